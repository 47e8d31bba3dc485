// @ts-check
// Capture: photos and videos for a creator, hashed on the phone (in slices,
// so a long video fits) for the duplicate check, sent with resumable tus
// uploads that survive a Wi-Fi drop and a reload. Files picked while the
// box is unreachable wait in the browser (IndexedDB) and go when it is back.
// Opened from a creator's upload link, the creator is fixed and the page
// shows that creator's captures and the figures attributed to them.
import { t } from "./strings.js";
import { sha256File } from "./sha256.js";
import { announce, el, errorBox, loadScript, money, screen, show, state } from "./ui.js";
import * as api from "./api.js";

// --- the waiting room: files picked while the box was unreachable ----------

const DB = "venuebox";
const QUEUE = "capture-queue";

function db() {
  return new Promise((ok, fail) => {
    const open = indexedDB.open(DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(QUEUE, { keyPath: "id", autoIncrement: true });
    open.onsuccess = () => ok(open.result);
    open.onerror = () => fail(open.error);
  });
}

async function queueOp(mode, op) {
  const d = await db();
  return new Promise((ok, fail) => {
    const req = op(d.transaction(QUEUE, mode).objectStore(QUEUE));
    req.onsuccess = () => ok(req.result);
    req.onerror = () => fail(req.error);
  }).finally(() => d.close());
}

const queue = {
  add: (item) => queueOp("readwrite", (s) => s.add(item)),
  all: () => queueOp("readonly", (s) => s.getAll()),
  remove: (id) => queueOp("readwrite", (s) => s.delete(id)),
};

// --- one file's way to the box ----------------------------------------------

/** A row in the list: the file's name, a progress bar and what happens. */
function row(list, name) {
  const progress = el("progress", { max: 100, value: 0, "aria-label": name });
  const note = el("span", { class: "upload-state" });
  const li = el("li", {}, `${name} `, progress, " ", note);
  list.append(li);
  return { li, progress, note };
}

/** Hashes, asks the box whether it has the bytes, then uploads with tus.
 * Resolves when the box holds the file; rejects with an ApiError
 * "unreachable" when the box cannot be reached before the upload starts. */
async function send(file, meta, r) {
  r.note.textContent = t.hashing;
  const sha = await sha256File(file, (done, total) => (r.progress.value = Math.floor((done / total) * 10)));
  r.li.dataset.sha256 = sha;
  const { present } = await api.capturesPresent([sha]);
  if (present.includes(sha)) {
    r.progress.value = 100;
    r.note.textContent = t.alreadyOnBox;
    return;
  }
  await loadScript("/app/vendor/tus.min.js", "tus");
  r.note.textContent = t.uploading;
  await new Promise((done, fail) => {
    const upload = new window.tus.Upload(file, {
      endpoint: "/api/v1/uploads/",
      headers: { authorization: `Bearer ${state.token}` },
      metadata: { ...meta, filename: file.name, filetype: file.type },
      chunkSize: 4 * 1024 * 1024,
      // A Wi-Fi drop: try again, from what reached the box's disk.
      retryDelays: [0, 500, 1000, 2000, 5000, 10000, 20000],
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      onProgress: (sent, total) => (r.progress.value = 10 + Math.floor((sent / total) * 90)),
      onSuccess: () => {
        r.progress.value = 100;
        r.note.textContent = t.uploaded;
        announce(`${file.name}: ${t.uploaded}`);
        done();
      },
      onError: (e) => {
        // No answer at all once the retries ran out: the box is away, so
        // the file waits like one picked offline. An answer is a refusal.
        if (!e.originalResponse) return fail(Object.assign(e, { code: "unreachable" }));
        r.note.textContent = t.uploadFailed(e.message || e);
        fail(e);
      },
    });
    // After a reload the same file resumes where the box left it.
    upload.findPreviousUploads().then((previous) => {
      if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
      upload.start();
    });
  });
}

/** Sends what waits in the browser, oldest first; stops at the first file
 * the box cannot be reached for. */
let draining = false;
async function drain(list, onSent) {
  if (draining || !state.token) return;
  draining = true;
  try {
    for (const item of await queue.all()) {
      let r = list.querySelector(`li[data-queued="${item.id}"]`);
      r = r ? { li: r, progress: r.querySelector("progress"), note: r.querySelector(".upload-state") } : row(list, item.name);
      r.li.dataset.queued = item.id;
      const file = new File([item.blob], item.name, { type: item.type });
      try {
        await send(file, item.meta, r);
        await queue.remove(item.id);
        onSent();
      } catch (e) {
        if (e.code === "unreachable") {
          r.note.textContent = t.waitingForBox;
          return;
        }
        // A sign-in (or link) that ended is no reason to lose the file:
        // it waits for the next sign-in.
        const status = e.status || (e.originalResponse && e.originalResponse.getStatus());
        if (status === 401) {
          r.note.textContent = t.waitingForSignIn;
          return;
        }
        // Refused by the box (too large, not a photo): say so, drop it.
        r.note.textContent = t.uploadFailed(e.message || e);
        await queue.remove(item.id);
      }
    }
  } finally {
    draining = false;
  }
}

// --- the screen ---------------------------------------------------------------

/** `fixed`: {id, name} of the creator an upload link is for. */
export async function captureScreen(fixed) {
  const creators = fixed ? [fixed] : (state.event && state.event.creators) || [];
  const creator = el("select", { id: "creator", disabled: !!fixed }, ...creators.map((c) => el("option", { value: c.id }, c.name)));
  const consent = el("input", { id: "consent", type: "checkbox" });
  const files = el("input", { id: "files", type: "file", accept: "image/*,video/*", multiple: true });
  const list = el("ul", { id: "uploads", "aria-label": t.uploadsList });
  const form = el("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const meta = { creator: creator.value, consent: String(consent.checked) };
      for (const file of [...files.files]) {
        const r = row(list, file.name);
        try {
          await send(file, meta, r);
        } catch (e) {
          if (e.code !== "unreachable") {
            // Refused (a sign-in that ended, a file too large): say why.
            r.note.textContent = t.uploadFailed(e.message || e);
            continue;
          }
          // The box is away: keep the file here until it is back.
          const id = await queue.add({ blob: file, name: file.name, type: file.type, meta, at: Date.now() });
          r.li.dataset.queued = id;
          r.note.textContent = t.waitingForBox;
          announce(t.waitingForBox);
        }
      }
      files.value = "";
      figuresNow();
    },
  },
    el("label", { for: "creator" }, t.creator), creator,
    el("label", { for: "files" }, t.files), files,
    el("label", { class: "check" }, consent, " ", t.consent),
    el("button", { type: "submit", class: "primary", id: "upload" }, t.upload));
  const figures = el("div", { id: "creator-figures" });
  show(el("section", {}, el("h2", {}, fixed ? t.linkTitle(fixed.name) : t.captureTitle), form, list, fixed ? figures : ""));
  // Whatever waited from before (a reload, the box away) goes now, and
  // again whenever the phone is back online or every few seconds.
  const figuresNow = () => fixed && refreshLinkFigures(fixed, figures).catch((e) => figures.replaceChildren(
    e.code === "unreachable" ? el("p", { role: "alert" }, t.linkOffline) : errorBox(e)));
  const retry = () => drain(list, figuresNow).catch(() => {});
  const timer = setInterval(retry, 5000);
  addEventListener("online", retry);
  screen.leave = () => {
    clearInterval(timer);
    removeEventListener("online", retry);
  };
  retry();
  await figuresNow();
}

/** A creator's own page (from their upload link): what the box holds of
 * theirs and what is attributed to them. */
async function refreshLinkFigures(creator, box) {
  const [s, page] = await Promise.all([
    api.creatorSummary(creator.id),
    api.creatorCaptures(creator.id, 50),
  ]);
  const thumbs = await Promise.all(page.items.map(async (c) => {
    if (!c.thumbnail) return el("li", {}, `${c.media_type} · ${c.captured_at.slice(0, 16).replace("T", " ")}`);
    const blob = await api.thumbnail(c.thumbnail);
    const img = el("img", { src: URL.createObjectURL(blob), alt: t.captureAt(c.captured_at.slice(0, 16).replace("T", " ")), width: 96 });
    // A video: its poster frame, with its length.
    return c.duration_ms == null ? el("li", {}, img)
      : el("li", { class: "video" }, img, el("span", { class: "duration" }, t.videoLength(Math.round(c.duration_ms / 1000))));
  }));
  box.replaceChildren(
    el("h3", {}, t.yourFigures),
    el("dl", { class: "figures-list" },
      el("dt", {}, t.yourCaptures), el("dd", { id: "link-captures" }, String(s.captures.count)),
      el("dt", {}, t.yourTickets), el("dd", { id: "link-tickets" }, String(s.tickets_attributed)),
      el("dt", {}, t.yourCheckins), el("dd", { id: "link-checkins" }, String(s.checkins_attributed)),
      el("dt", {}, t.yourScholarships), el("dd", {}, String(s.scholarship_claims)),
      el("dt", {}, t.yourMerchOrders), el("dd", {}, String(s.drop_orders)),
      el("dt", {}, t.yourSales), el("dd", { id: "link-sales" }, money(s.drop_sales_minor + s.ticket_sales_minor, s.currency))),
    el("h3", {}, t.yourCapturesList),
    el("ul", { class: "thumbs", id: "link-thumbs" }, ...thumbs));
}
