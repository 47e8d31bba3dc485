// @ts-check
// The door, scan-first: the camera opens by itself for door staff and
// reads codes continuously (decoded off the page's thread, inside the
// aiming frame); each verdict fills the screen, ADMIT clears itself after
// a moment, STOP waits for a tap. Typing a code and finding a guest by
// name, order code or email (a dead phone) sit behind one button. A
// supervisor may undo an admission; the gate's USB scanners' verdicts show
// below (the scans feed).
import { t } from "./strings.js";
import { announce, el, errorBox, may, nonce, screen, show, state, timeOfDay } from "./ui.js";
import * as api from "./api.js";
import { openCamera, qrReader } from "./camera.js";

/** How long an ADMIT stays on screen (ms; 0: until tapped), per device. */
const CLEAR_KEY = "venuebox.admitClearMs";
/** A code still in view after its verdict is not decided again until it
 * has been out of view this long. */
const REPEAT_MS = 2000;

// One AudioContext for the whole shift, made on the first tap (browsers
// allow sound only after one), reused for every verdict.
let audio = null;
export function unlockSound() {
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume();
  } catch {
    audio = null;
  }
}

function beep(admit) {
  if (!audio) return;
  try {
    const o = audio.createOscillator();
    o.frequency.value = admit ? 880 : 220;
    o.connect(audio.destination);
    o.start();
    o.stop(audio.currentTime + (admit ? 0.12 : 0.4));
  } catch {
    // No sound on this device: the screen says it.
  }
}

/** "21:14" in the event's time zone. */
const clock = (iso) => timeOfDay(iso);

/** "at Main door, 3 min ago (21:14)": measured on the box's clock (the
 * answer's time against the earlier one), not the phone's. */
function previousLine(answer) {
  const p = answer.previous;
  const mins = Math.max(0, Math.round((Date.parse(answer.recorded_at) - Date.parse(p.at)) / 60000));
  return t.previousAt(p.gate_name || p.gate, mins, clock(p.at));
}

// The questions pretix asks at check-in: one field each, by type.
function questionsForm(questions, onAnswers) {
  const fields = questions.map((q) => {
    const id = `question-${q.id}`;
    let input;
    if (q.type === "B") {
      input = el("input", { id, type: "checkbox", name: String(q.id) });
    } else if (q.type === "C" || q.type === "M") {
      input = el("select", { id, name: String(q.id), multiple: q.type === "M" },
        q.type === "C" ? el("option", { value: "" }, "") : "",
        ...q.options.map((o) => el("option", { value: String(o.id) }, o.answer)));
    } else {
      const type = { N: "number", D: "date", H: "time", W: "datetime-local", TEL: "tel" }[q.type] || "text";
      input = el("input", { id, type, name: String(q.id), required: q.required, autocomplete: "off" });
    }
    return { q, input, row: el("p", {}, el("label", { for: id }, q.question + (q.required ? " *" : "")), input) };
  });
  const form = el("form", { id: "checkin-questions", onsubmit: (e) => {
    e.preventDefault();
    const answers = {};
    for (const { q, input } of fields) {
      if (q.type === "B") answers[q.id] = input.checked ? "true" : "false";
      else if (q.type === "M") answers[q.id] = [...input.selectedOptions].map((o) => o.value).join(",");
      else if (q.type === "W" && input.value) answers[q.id] = new Date(input.value).toISOString();
      else answers[q.id] = input.value;
    }
    onAnswers(answers);
  } }, el("p", {}, t.questionsFirst), ...fields.map((f) => f.row), el("button", { type: "submit", class: "primary" }, t.checkInWithAnswers));
  return form;
}

/** What staff say to the guest: the box's words in English (they name
 * gates and times), the app's own in another language; an earlier
 * check-in is said apart, in the event's time zone. */
function said(answer) {
  if (answer.previous) return t.alreadyIn;
  if (t.lang === "en") return answer.message;
  return answer.reason ? t.reasons[answer.reason] || answer.message : t.welcome;
}

/** The verdict, full screen. `interactive` tells the caller whether staff
 * must act on it (it then stays until they do). */
function verdictView(answer, actions) {
  const admit = answer.verdict === "admit";
  const kind = (admit ? "verdict admit" : "verdict reject") + (answer.attention ? " attention" : "");
  const box = el("section", { class: kind, role: "alert", "aria-live": "assertive" },
    answer.attention ? el("p", { class: "attention-flag", id: "attention" }, t.attention) : "",
    el("p", { class: "big" }, admit ? t.admitted : answer.ask === "unpaid" ? t.unpaidAsk : t.rejected),
    // The box's words, except for a time: the earlier check-in in the
    // event's time zone, and how long ago.
    el("p", { class: "message" }, said(answer)),
    answer.previous ? el("p", { class: "previous" }, previousLine(answer)) : "",
    ...(answer.checkin_texts || []).map((text) => el("p", { class: "checkin-text" }, text)));
  let interactive = !admit;
  if (answer.ask === "unpaid") {
    // pretix's lists that include pending orders: staff decide.
    box.append(el("button", { type: "button", id: "confirm-unpaid", onclick: actions.confirmUnpaid }, t.letInUnpaid));
  }
  if (answer.questions && answer.questions.length) box.append(questionsForm(answer.questions, actions.answer));
  if (answer.ticket) {
    const dl = el("dl", {});
    dl.append(el("dt", {}, t.holder), el("dd", { class: "holder" }, answer.ticket.holder || answer.ticket.id));
    dl.append(el("dt", {}, t.tier), el("dd", {}, answer.ticket.tier_name || answer.ticket.tier || ""));
    box.append(dl);
  }
  const boss = may("supervise");
  if (admit && boss) {
    // A supervisor takes back a mistaken admission (within the box's window).
    interactive = true;
    const undo = el("button", {
      type: "button", id: "undo",
      onclick: async () => {
        try {
          await api.undoCheckIn(answer.scan_id);
          undo.replaceWith(el("p", { id: "undone" }, t.undone));
          announce(t.undone);
        } catch (e) {
          undo.replaceWith(errorBox(e));
        }
      },
    }, t.undo);
    box.append(undo);
  }
  box.append(el("button", { type: "button", class: "primary", id: "verdict-next", onclick: actions.next }, t.next));
  // A tap anywhere on a STOP (not on its buttons or fields) clears it.
  box.addEventListener("click", (e) => {
    if (e.target === box || (e.target.parentElement === box && e.target.tagName === "P")) actions.next();
  });
  if (navigator.vibrate) navigator.vibrate(admit ? 80 : [200, 80, 200]);
  beep(admit);
  return { box, interactive };
}

function guestList(items, checkInTicket) {
  if (!items.length) return el("p", { id: "found-none" }, t.foundNone);
  return el("ul", { id: "found", class: "found" }, ...items.map((f) => {
    const who = f.holder || f.id;
    const facts = [f.tier_name || f.tier, f.order ? t.orderCode(f.order) : "", f.status !== "paid" ? t.ticketStatus(f.status) : ""]
      .filter(Boolean).join(" · ");
    return el("li", {},
      el("strong", {}, who), el("span", {}, ` · ${facts}`),
      f.admitted ? el("small", { class: "previous" }, ` · ${t.inAt(f.admitted.gate_name || f.admitted.gate, clock(f.admitted.at))}`) : "",
      el("button", { type: "button", onclick: () => checkInTicket(f.id) }, t.checkInGuest(who)));
  }));
}

export async function doorScreen() {
  const gates = (state.event && state.event.gates) || [];
  const gate = el("select", { id: "gate" }, ...gates.map((g) => el("option", { value: g.id }, g.name)));
  const saved = localStorage.getItem("venuebox.gate");
  if (saved && gates.some((g) => g.id === saved)) gate.value = saved;
  gate.addEventListener("change", () => localStorage.setItem("venuebox.gate", gate.value));
  const direction = el("select", { id: "direction" }, el("option", { value: "entry" }, t.entry), el("option", { value: "exit" }, t.exit));
  const clearMs = el("select", { id: "admit-clear" },
    ...[["1000", t.clearAfter(1)], ["2000", t.clearAfter(2)], ["3000", t.clearAfter(3)], ["0", t.clearOnTap]]
      .map(([v, label]) => el("option", { value: v }, label)));
  clearMs.value = localStorage.getItem(CLEAR_KEY) || "1000";
  clearMs.addEventListener("change", () => localStorage.setItem(CLEAR_KEY, clearMs.value));

  const layer = el("div", { id: "verdict-layer" });
  const video = el("video", { id: "camera", playsinline: true, muted: true, "aria-label": t.cameraView });
  const finder = el("div", { class: "viewfinder", hidden: true }, video, el("div", { class: "aim", "aria-hidden": "true" }));
  let stopReading = () => {};
  let stream = null;
  // What the camera last decided, so a code held in view is read once.
  let last = { text: null, seen: 0 };
  let blocking = false;
  let clearTimer = null;

  const dismiss = () => {
    clearTimeout(clearTimer);
    layer.replaceChildren();
    blocking = false;
  };
  const showVerdict = (answer, again) => {
    clearTimeout(clearTimer);
    const { box, interactive } = verdictView(answer, {
      next: dismiss,
      confirmUnpaid: () => again(true, null),
      answer: (given) => again(false, given),
    });
    layer.replaceChildren(box);
    blocking = interactive;
    const ms = Number(clearMs.value);
    if (!interactive && ms > 0) clearTimer = setTimeout(dismiss, ms);
  };

  const send = async (what, confirmUnpaid = false, answers = null) => {
    try {
      const body = { ...what, gate: gate.value, direction: direction.value, nonce: nonce() };
      if (confirmUnpaid) body.confirm_unpaid = true;
      if (answers) body.answers = answers;
      const answer = await api.checkIn(body);
      if (what.code) {
        state.draft = "";
        code.value = "";
      }
      announce(answer.previous ? `${t.alreadyIn} ${previousLine(answer)}` : said(answer));
      showVerdict(answer, (unpaid, given) => send(what, unpaid || confirmUnpaid, given || answers));
    } catch (e) {
      if (e.status === 401) return screen.signIn(t.sessionExpired);
      layer.replaceChildren(el("section", { class: "verdict reject", role: "alert" },
        el("p", { class: "big" }, t.rejected), errorBox(e),
        el("button", { type: "button", class: "primary", id: "verdict-next", onclick: dismiss }, t.next)));
      blocking = true;
    }
  };
  const onCode = (text) => {
    const now = performance.now();
    if (text === last.text && now - last.seen < REPEAT_MS) {
      last.seen = now;
      return;
    }
    // Under a STOP nothing new is decided, nor remembered: the next
    // guest's code is read once the STOP is tapped away.
    if (blocking) return;
    last = { text, seen: now };
    send({ code: text.trim() });
  };

  const cameraButton = el("button", { type: "button", id: "camera-button", onclick: () => (stream ? stop() : start()) }, t.camera);
  const torch = el("button", { type: "button", id: "torch", hidden: true, "aria-pressed": "false" }, t.torch);
  async function start() {
    try {
      finder.hidden = false;
      stream = await openCamera(video);
      cameraButton.textContent = t.cameraStop;
      announce(t.scanning);
      const track = stream.getVideoTracks()[0];
      const caps = track && track.getCapabilities ? track.getCapabilities() : {};
      if (caps.torch) {
        torch.hidden = false;
        torch.onclick = async () => {
          const on = torch.getAttribute("aria-pressed") !== "true";
          await track.applyConstraints({ advanced: [{ torch: on }] }).catch(() => {});
          torch.setAttribute("aria-pressed", String(on));
        };
      }
      stopReading = qrReader(video, onCode);
    } catch {
      stream = null;
      finder.hidden = true;
      cameraNote.replaceChildren(el("p", { role: "alert" }, t.cameraUnavailable));
      manual.hidden = false;
    }
  }
  function stop() {
    stopReading();
    stopReading = () => {};
    if (stream) stream.getTracks().forEach((tr) => tr.stop());
    stream = null;
    finder.hidden = true;
    torch.hidden = true;
    cameraButton.textContent = t.camera;
  }
  const cameraNote = el("div");

  // Behind one button: typing a code, and finding a guest by name.
  const code = el("input", { id: "code", name: "code", autocomplete: "off", inputmode: "text", value: state.draft });
  code.addEventListener("input", () => (state.draft = code.value));
  const typed = el("form", { id: "typed", onsubmit: (ev) => { ev.preventDefault(); if (code.value.trim()) send({ code: code.value.trim() }); } },
    el("label", { for: "code" }, t.code), code,
    el("button", { type: "submit", class: "primary", id: "check-in" }, t.checkIn));
  const query = el("input", { id: "find", name: "q", type: "search", autocomplete: "off", minlength: "2", maxlength: "100" });
  const found = el("div", { id: "found-out", "aria-live": "polite" });
  const search = el("form", { id: "find-guest", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const r = await api.findTickets(query.value.trim());
      found.replaceChildren(guestList(r.items, (id) => send({ ticket: id })));
    } catch (e) {
      if (e.status === 401) return screen.signIn(t.sessionExpired);
      found.replaceChildren(errorBox(e));
    }
  } }, el("label", { for: "find" }, t.findGuest), query, el("button", { type: "submit" }, t.search), found);
  const manual = el("section", { id: "manual", hidden: !state.draft }, typed, search);
  const manualButton = el("button", { type: "button", id: "manual-button", "aria-expanded": String(!!state.draft), "aria-controls": "manual",
    onclick: () => {
      manual.hidden = !manual.hidden;
      manualButton.setAttribute("aria-expanded", String(!manual.hidden));
    } }, t.typeOrFind);

  const settings = el("details", { class: "door-settings" }, el("summary", {}, t.doorSettings),
    el("label", { for: "gate" }, t.gate), gate,
    el("label", { for: "direction" }, t.direction), direction,
    el("label", { for: "admit-clear" }, t.admitClear), clearMs);
  const gateName = el("p", { class: "gate-now" }, t.scanningAt(gates.find((g) => g.id === gate.value)?.name || gate.value));
  gate.addEventListener("change", () => (gateName.textContent = t.scanningAt(gate.selectedOptions[0]?.textContent || gate.value)));
  // The USB scanners at this gate: their verdicts appear here too.
  const scanners = el("ol", { id: "scanner-verdicts", "aria-live": "polite", "aria-label": t.scannerVerdicts });
  show(el("section", { class: "door" }, el("h2", {}, t.doorTitle), gateName, finder, cameraNote,
    el("div", { class: "row" }, cameraButton, torch, manualButton), manual, settings, layer,
    el("h3", {}, t.scannerVerdicts), scanners));
  const feed = new AbortController();
  screen.leave = () => { stop(); dismiss(); feed.abort(); };
  api.scansFeed(feed.signal, (name, data) => {
    if (name !== "scan") return;
    const v = JSON.parse(data);
    if (v.source.startsWith("staff ") || v.gate !== gate.value) return;
    const admit = v.verdict === "admit";
    const item = el("li", { class: admit ? "scan admit" : "scan reject" },
      el("strong", {}, admit ? t.admitted : t.rejected), " ", el("span", { class: "message" }, v.message),
      v.holder ? el("span", { class: "holder" }, ` · ${v.holder}`) : "",
      el("small", {}, ` · ${v.source} · ${clock(v.at)}`));
    scanners.prepend(item);
    while (scanners.children.length > 5) scanners.lastChild.remove();
    if (navigator.vibrate && !admit) navigator.vibrate([200, 80, 200]);
  }).catch(() => {});
  // Door staff scan first: the camera opens by itself.
  if (state.who && state.who.role === "door") await start();
}
