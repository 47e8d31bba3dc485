// The door: gate and direction, a typed code or the camera (BarcodeDetector,
// else the vendored jsQR), the verdict filling the screen, a supervisor's
// undo, and the verdicts of the gate's USB scanners (the scans feed).
import { t } from "./strings.js";
import { announce, api, el, errorBox, events, nonce, screen, show, state } from "./ui.js";

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

function verdictView(answer, onNext, onConfirmUnpaid, onAnswers) {
  const admit = answer.verdict === "admit";
  const kind = (admit ? "verdict admit" : "verdict reject") + (answer.attention ? " attention" : "");
  const box = el("section", { class: kind, role: "alert", "aria-live": "assertive" },
    answer.attention ? el("p", { class: "attention-flag", id: "attention" }, t.attention) : "",
    el("p", { class: "big" }, admit ? t.admitted : answer.ask === "unpaid" ? t.unpaidAsk : t.rejected),
    el("p", { class: "message" }, answer.message),
    ...(answer.checkin_texts || []).map((text) => el("p", { class: "checkin-text" }, text)));
  if (answer.ask === "unpaid") {
    // pretix's lists that include pending orders: staff decide.
    box.append(el("button", { type: "button", id: "confirm-unpaid", onclick: onConfirmUnpaid }, t.letInUnpaid));
  }
  if (answer.questions && answer.questions.length) box.append(questionsForm(answer.questions, onAnswers));
  if (answer.ticket) {
    const dl = el("dl", {});
    if (answer.ticket.holder) dl.append(el("dt", {}, t.holder), el("dd", { class: "holder" }, answer.ticket.holder));
    dl.append(el("dt", {}, t.tier), el("dd", {}, answer.ticket.tier_name || answer.ticket.tier || ""));
    box.append(dl);
  }
  const boss = state.who && (state.who.role === "supervisor" || state.who.role === "admin");
  if (admit && boss) {
    // A supervisor takes back a mistaken admission (within the box's window).
    const undo = el("button", {
      type: "button", id: "undo",
      onclick: async () => {
        try {
          await api("POST", `/api/v1/checkins/${answer.scan_id}/undo`, {});
          undo.replaceWith(el("p", { id: "undone" }, t.undone));
          announce(t.undone);
        } catch (e) {
          undo.replaceWith(errorBox(e));
        }
      },
    }, t.undo);
    box.append(undo);
  }
  box.append(el("button", { type: "button", class: "primary", onclick: onNext }, t.next));
  if (navigator.vibrate) navigator.vibrate(admit ? 80 : [200, 80, 200]);
  beep(admit);
  return box;
}

function beep(admit) {
  try {
    const ctx = new AudioContext();
    const o = ctx.createOscillator();
    o.frequency.value = admit ? 880 : 220;
    o.connect(ctx.destination);
    o.start();
    o.stop(ctx.currentTime + (admit ? 0.12 : 0.4));
  } catch {
    // No sound on this device: the screen says it.
  }
}

export async function doorScreen() {
  const gates = (state.event && state.event.gates) || [];
  const gate = el("select", { id: "gate" }, ...gates.map((g) => el("option", { value: g.id }, g.name)));
  const saved = localStorage.getItem("venuebox.gate");
  if (saved) gate.value = saved;
  gate.addEventListener("change", () => localStorage.setItem("venuebox.gate", gate.value));
  const direction = el("select", { id: "direction" }, el("option", { value: "entry" }, t.entry), el("option", { value: "exit" }, t.exit));
  const code = el("input", { id: "code", name: "code", autocomplete: "off", inputmode: "text", value: state.draft });
  code.addEventListener("input", () => (state.draft = code.value));
  const out = el("div", { id: "door-out" });
  const video = el("video", { id: "camera", playsinline: true, muted: true, hidden: true });
  let scanning = false;

  const checkIn = async (text, confirmUnpaid = false, answers = null) => {
    const value = (text || "").trim();
    if (!value) return;
    try {
      const body = { code: value, gate: gate.value, direction: direction.value, nonce: nonce() };
      if (confirmUnpaid) body.confirm_unpaid = true;
      if (answers) body.answers = answers;
      const answer = await api("POST", "/api/v1/checkins", body);
      state.draft = "";
      code.value = "";
      announce(answer.message);
      out.replaceChildren(verdictView(answer, () => { out.replaceChildren(); code.focus(); resume(); },
        () => checkIn(value, true, answers), (given) => checkIn(value, confirmUnpaid, given)));
    } catch (e) {
      if (e.status === 401) return screen.signIn(t.sessionExpired);
      out.replaceChildren(errorBox(e));
      resume();
    }
  };
  let resume = () => {};
  const camera = el("button", { type: "button", id: "camera-button", onclick: () => (scanning ? stop() : start()) }, t.camera);
  async function start() {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
      video.srcObject = stream;
      video.hidden = false;
      await video.play();
      scanning = true;
      camera.textContent = t.cameraStop;
      announce(t.scanning);
      const detect = await detector();
      const loop = async () => {
        if (!scanning) return;
        const found = await detect(video).catch(() => null);
        if (found) {
          scanning = false;
          resume = () => { scanning = true; requestAnimationFrame(loop); };
          return checkIn(found);
        }
        requestAnimationFrame(loop);
      };
      requestAnimationFrame(loop);
    } catch {
      out.replaceChildren(el("p", { role: "alert" }, t.cameraUnavailable));
    }
  }
  function stop() {
    scanning = false;
    resume = () => {};
    if (video.srcObject) video.srcObject.getTracks().forEach((tr) => tr.stop());
    video.hidden = true;
    camera.textContent = t.camera;
  }
  const form = el("form", { onsubmit: (ev) => { ev.preventDefault(); checkIn(code.value); } },
    el("label", { for: "gate" }, t.gate), gate,
    el("label", { for: "direction" }, t.direction), direction,
    el("label", { for: "code" }, t.code), code,
    el("button", { type: "submit", class: "primary", id: "check-in" }, t.checkIn));
  // The USB scanners at this gate: their verdicts appear here too.
  const scanners = el("ol", { id: "scanner-verdicts", "aria-live": "polite", "aria-label": t.scannerVerdicts });
  show(el("section", {}, el("h2", {}, t.doorTitle), camera, video, form, out,
    el("h3", {}, t.scannerVerdicts), scanners));
  const feed = new AbortController();
  screen.leave = () => { stop(); feed.abort(); };
  events("/api/v1/scans/feed", feed.signal, (name, data) => {
    if (name !== "scan") return;
    const v = JSON.parse(data);
    if (v.source.startsWith("staff ") || v.gate !== gate.value) return;
    const admit = v.verdict === "admit";
    const item = el("li", { class: admit ? "scan admit" : "scan reject" },
      el("strong", {}, admit ? t.admitted : t.rejected), " ", el("span", { class: "message" }, v.message),
      v.holder ? el("span", { class: "holder" }, ` · ${v.holder}`) : "",
      el("small", {}, ` · ${v.source} · ${v.at.slice(11, 19)}`));
    scanners.prepend(item);
    while (scanners.children.length > 5) scanners.lastChild.remove();
    if (navigator.vibrate && !admit) navigator.vibrate([200, 80, 200]);
  }).catch(() => {});
}

/** A QR reader: the browser's BarcodeDetector, else the vendored jsQR. */
async function detector() {
  if ("BarcodeDetector" in window) {
    const d = new window.BarcodeDetector({ formats: ["qr_code"] });
    return async (video) => {
      const codes = await d.detect(video);
      return codes.length ? codes[0].rawValue : null;
    };
  }
  if (!window.jsQR) {
    await new Promise((ok, fail) => {
      const s = document.createElement("script");
      s.src = "/app/vendor/jsQR.js";
      s.onload = ok;
      s.onerror = fail;
      document.head.append(s);
    });
  }
  const canvas = document.createElement("canvas");
  const g = canvas.getContext("2d", { willReadFrequently: true });
  return async (video) => {
    const w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) return null;
    canvas.width = w;
    canvas.height = h;
    g.drawImage(video, 0, 0, w, h);
    const found = window.jsQR(g.getImageData(0, 0, w, h).data, w, h, { inversionAttempts: "dontInvert" });
    return found ? found.data : null;
  };
}
