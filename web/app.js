// The staff app: pairing, PIN sign-in and the door. Served by the box
// (embedded in the binary), talking only to the box's own API. Every text
// a guest could have chosen (holder names) is set with textContent, never
// as HTML.
import { t } from "./strings.js";

const DEVICE_KEY = "venuebox.device";
const TOKEN_KEY = "venuebox.token";
const main = document.getElementById("main");
const status = document.getElementById("status");

const state = {
  device: localStorage.getItem(DEVICE_KEY),
  token: sessionStorage.getItem(TOKEN_KEY),
  who: null,
  event: null,
  // What the door had typed when a sign-in ended, kept for after.
  draft: "",
};

/** Builds an element: el("button", {type: "button", onclick}, "text", child). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v === true) e.setAttribute(k, "");
    else if (v !== false && v != null) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function announce(text) {
  status.textContent = text;
}

function show(...nodes) {
  main.replaceChildren(...nodes);
  main.focus();
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the box; a 401 on a signed-in call returns to sign-in. */
async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "unreachable", t.unreachable);
  }
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) {
    const e = data && data.error ? data.error : { code: "http_" + r.status, message: r.statusText };
    if (r.status === 401 && state.token) {
      state.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
    }
    throw new ApiError(r.status, e.code, e.message);
  }
  return data;
}

function errorBox(e) {
  return el("p", { class: "error", role: "alert" }, e.code === "unreachable" ? e.message : t.error(e.message));
}

// --- pairing ---------------------------------------------------------------

function pairScreen(message) {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("code") || "";
  const code = el("input", { id: "pair-code", name: "code", autocomplete: "off", autocapitalize: "characters", value: fromLink, required: true });
  const name = el("input", { id: "pair-name", name: "name", value: t.deviceNameDefault, required: true });
  const out = el("div");
  const form = el("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const r = await api("POST", "/api/v1/paired-devices", { code: code.value.trim(), name: name.value.trim() });
        state.device = r.credential;
        localStorage.setItem(DEVICE_KEY, r.credential);
        history.replaceState(null, "", location.pathname);
        announce(t.paired);
        signInScreen(t.paired);
      } catch (e) {
        out.replaceChildren(errorBox(e));
      }
    },
  },
    el("h2", {}, t.pairTitle),
    el("p", {}, t.pairHelp),
    el("label", { for: "pair-code" }, t.pairCode), code,
    el("label", { for: "pair-name" }, t.deviceName), name,
    el("button", { type: "submit", class: "primary" }, t.pairButton),
    out);
  show(form);
  if (message) out.replaceChildren(el("p", { role: "alert" }, message));
}

// --- sign-in -----------------------------------------------------------------

function signInScreen(message) {
  let pin = "";
  const dots = el("output", { id: "pin", "aria-label": t.pinLabel }, "");
  const out = el("div");
  const render = () => (dots.textContent = "•".repeat(pin.length));
  const submit = async () => {
    try {
      const r = await api("POST", "/api/v1/session", { pin, device: state.device });
      state.token = r.token;
      sessionStorage.setItem(TOKEN_KEY, r.token);
      state.who = { name: r.name, role: r.role };
      await home();
    } catch (e) {
      pin = "";
      render();
      if (e.code === "device_not_paired") {
        localStorage.removeItem(DEVICE_KEY);
        state.device = null;
        return pairScreen(e.message);
      }
      out.replaceChildren(errorBox(e));
    }
  };
  const key = (label, aria, action) => el("button", { type: "button", class: "key", "aria-label": aria, onclick: action }, label);
  const pad = el("div", { class: "keypad" },
    ..."123456789".split("").map((d) => key(d, d, () => { if (pin.length < 12) pin += d; render(); })),
    key("⌫", t.keyDelete, () => { pin = pin.slice(0, -1); render(); }),
    key("0", "0", () => { if (pin.length < 12) pin += "0"; render(); }),
    key("OK", t.keyOk, submit));
  show(el("section", {}, el("h2", {}, t.signInTitle), message ? el("p", { role: "alert" }, message) : "", dots, pad, out));
}

// --- door --------------------------------------------------------------------

function verdictView(answer, onNext) {
  const admit = answer.verdict === "admit";
  const box = el("section", { class: admit ? "verdict admit" : "verdict reject", role: "alert", "aria-live": "assertive" },
    el("p", { class: "big" }, admit ? t.admitted : t.rejected),
    el("p", { class: "message" }, answer.message));
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

function nonce() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

async function doorScreen() {
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

  const checkIn = async (text) => {
    const value = (text || "").trim();
    if (!value) return;
    try {
      const answer = await api("POST", "/api/v1/checkins", { code: value, gate: gate.value, direction: direction.value, nonce: nonce() });
      state.draft = "";
      code.value = "";
      announce(answer.message);
      out.replaceChildren(verdictView(answer, () => { out.replaceChildren(); code.focus(); resume(); }));
    } catch (e) {
      if (e.status === 401) return signInScreen(t.sessionExpired);
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
  leave = () => stop();
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
  show(el("section", {}, el("h2", {}, t.doorTitle), camera, video, form, out));
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

// --- start -------------------------------------------------------------------

// --- dashboard ---------------------------------------------------------------

/** Reads a server-sent event stream with the staff token (EventSource
 * cannot send one), calling onEvent(name, data) until signal aborts. */
async function events(path, signal, onEvent) {
  const r = await fetch(path, { headers: { authorization: `Bearer ${state.token}` }, signal });
  if (!r.ok || !r.body) throw new ApiError(r.status, "feed", r.statusText);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      onEvent(name, data);
    }
  }
}

function table(headers, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c))))));
}

async function dashboardScreen() {
  const stop = new AbortController();
  leave = () => stop.abort();
  const body = el("div", { id: "dashboard" });
  show(el("section", {}, el("h2", {}, t.dashboardTitle), body));
  const render = async () => {
    const [stats, drops, devices, sync, clock] = await Promise.all([
      api("GET", "/api/v1/stats"),
      api("GET", "/api/v1/drops").catch(() => ({ drops: [] })),
      api("GET", "/api/v1/devices").catch(() => ({ devices: [] })),
      api("GET", "/api/v1/sync").catch(() => null),
      // The box's own clock, from its Date header.
      fetch("/healthz").then((r) => r.headers.get("date")).catch(() => null),
    ]);
    const figure = (id, label, n) => el("div", { class: "figure" }, el("span", { class: "n", id }, String(n)), el("span", {}, label));
    const reasons = Object.entries(stats.rejected_by_reason).filter(([, n]) => n > 0);
    body.replaceChildren(
      el("div", { class: "figures" },
        figure("inside", t.inside, stats.inside),
        figure("admitted", t.admittedTotal, stats.admitted),
        figure("rejected", t.rejectedTotal, stats.rejected)),
      el("h3", {}, t.perGate),
      table(["", t.gateEntries, t.gateExits, t.gateRejected],
        Object.entries(stats.gates).map(([g, c]) => [g, c.entries, c.exits, c.rejected])),
      reasons.length ? el("h3", {}, t.refusedWhy) : "",
      reasons.length ? table(["", ""], reasons) : "",
      el("h3", {}, t.drops),
      table(["", "", t.available], drops.drops.flatMap((d) =>
        d.products.map((p) => [d.name, p.variant ? `${p.name} (${p.variant})` : p.name, p.available]))),
      el("h3", {}, t.devices),
      table(["", ""], devices.devices.map((d) => [d.name, d.status])),
      el("h3", {}, t.sync),
      el("p", {}, sync && sync.enabled ? t.syncLast(sync.state, sync.last_success_at) : "off"),
      el("p", {}, `${t.boxClock}: `, el("time", {}, clock || "?")));
  };
  try {
    await render();
  } catch (e) {
    if (e.status === 401) return signInScreen(t.sessionExpired);
    return body.replaceChildren(errorBox(e));
  }
  const timer = setInterval(() => render().catch(() => {}), 5000);
  stop.signal.addEventListener("abort", () => clearInterval(timer));
  // Every verdict, from any phone or scanner, refreshes the figures.
  events("/api/v1/scans/feed", stop.signal, (name) => {
    if (name === "scan") render().catch(() => {});
  }).catch(() => {});
}

// --- merch ---------------------------------------------------------------------

/** The change and the new ticket's QR code (fetched with the token). */
async function ticketView(order, prefix) {
  const ticket = order.tickets[0];
  const png = await fetch(ticket.qr, { headers: { authorization: `Bearer ${state.token}` } }).then((r) => r.blob());
  const change = t.change(money(order.change_minor, order.currency));
  announce(change);
  return [
    el("p", { class: "big", id: `${prefix}-change` }, change),
    el("p", {}, t.newTicket),
    el("img", { class: "ticket-qr", id: `${prefix}-qr`, alt: `QR code of ticket ${ticket.id}`, src: URL.createObjectURL(png) }),
  ];
}

function money(minor, currency) {
  return `${(minor / 100).toFixed(2)} ${currency}`;
}

async function merchScreen() {
  const stop = new AbortController();
  leave = () => stop.abort();
  const cart = new Map(); // sku -> {name, qty, drop}
  let drop = null;
  let hold = null;
  const buyer = el("input", { id: "buyer", autocomplete: "off" });
  const list = el("div", { id: "products" });
  const cartBox = el("div", { id: "cart" });
  const out = el("div", { id: "merch-out" });
  show(el("section", {}, el("h2", {}, t.merchTitle), el("label", { for: "buyer" }, t.buyer), buyer, list,
    el("h3", {}, t.cart), cartBox, out));

  const renderCart = () => {
    if (!cart.size) return cartBox.replaceChildren(el("p", {}, t.cartEmpty));
    const rows = [...cart.entries()].map(([sku, c]) => el("li", {}, `${c.qty} × ${c.name}`));
    const holdButton = el("button", { type: "button", class: "primary", id: "hold", onclick: placeHold }, t.hold);
    cartBox.replaceChildren(el("ul", {}, ...rows), hold ? "" : holdButton);
  };
  const renderDrops = async () => {
    const { drops } = await api("GET", "/api/v1/drops");
    list.replaceChildren(...drops.filter((d) => d.phase === "live").map((d) =>
      el("div", { class: "drop" }, el("h3", {}, d.name), ...d.products.map((p) => {
        const name = p.variant ? `${p.name} (${p.variant})` : p.name;
        return el("button", {
          type: "button", class: "product", disabled: p.available <= 0 || !!hold,
          "aria-label": t.add(name),
          onclick: () => {
            if (drop && drop !== d.id) cart.clear();
            drop = d.id;
            const c = cart.get(p.sku) || { name, qty: 0 };
            c.qty += 1;
            cart.set(p.sku, c);
            renderCart();
          },
        }, `${name} · ${money(p.price_minor, d.currency)} · ${p.available} ${t.available}`);
      }))));
  };
  async function placeHold() {
    try {
      const items = [...cart.entries()].map(([sku, c]) => ({ sku, qty: c.qty }));
      const body = { items, nonce: nonce() };
      if (buyer.value.trim()) body.attendee_code = buyer.value.trim();
      hold = await api("POST", `/api/v1/drops/${drop}/holds`, body);
      renderCart();
      renderDrops().catch(() => {});
      const total = money(hold.totals.total_minor, hold.currency);
      const given = el("input", { id: "cash", inputmode: "decimal", autocomplete: "off" });
      const left = el("p", { id: "hold-left", role: "timer" });
      const tick = () => {
        const secs = Math.max(0, Math.round((Date.parse(hold.expires_at) - Date.now()) / 1000));
        left.textContent = secs ? t.heldFor(secs) : t.holdEnded;
      };
      tick();
      const timer = setInterval(tick, 1000);
      stop.signal.addEventListener("abort", () => clearInterval(timer));
      const reference = el("input", { id: "card-ref", autocomplete: "off" });
      const approver = el("input", { id: "approver-pin", type: "password", inputmode: "numeric", autocomplete: "off" });
      const bossHere = state.who.role === "supervisor" || state.who.role === "admin";
      const pay = async (tender) => {
        try {
          const order = await api("POST", `/api/v1/holds/${hold.id}/checkout`, { nonce: nonce(), tender });
          clearInterval(timer);
          const text = await fetch(order.receipt_text, { headers: { authorization: `Bearer ${state.token}` } }).then((r) => r.text());
          announce(t.change(money(order.change_minor, order.currency)));
          const receipt = el("section", { class: "receipt" },
            el("p", { class: "big", id: "change" }, t.change(money(order.change_minor, order.currency))),
            el("h3", {}, t.receipt), el("pre", { id: "receipt" }, text));
          const boss = state.who.role === "supervisor" || state.who.role === "admin";
          if (boss) {
            // A supervisor voids a sale on the spot, saying why.
            const reason = el("input", { id: "void-reason", autocomplete: "off" });
            const done = el("div");
            receipt.append(el("form", {
              onsubmit: async (ev) => {
                ev.preventDefault();
                try {
                  await api("POST", `/api/v1/orders/${order.order_id}/void`, { reason: reason.value });
                  done.replaceChildren(el("p", { id: "voided", role: "status" }, t.voided));
                  renderDrops().catch(() => {});
                } catch (e) {
                  done.replaceChildren(errorBox(e));
                }
              },
            }, el("label", { for: "void-reason" }, t.voidReason), reason,
              el("button", { type: "submit" }, t.voidOrder), done));
          }
          receipt.append(el("button", { type: "button", class: "primary", onclick: () => merchScreen() }, t.newSale));
          out.replaceChildren(receipt);
        } catch (e) {
          if (e.status === 401) return signInScreen(t.sessionExpired);
          out.querySelector(".error")?.remove();
          out.append(errorBox(e));
        }
      };
      out.replaceChildren(
        el("p", { class: "big", id: "total" }, total), left,
        el("form", {
          onsubmit: (ev) => {
            ev.preventDefault();
            pay({ kind: "cash", given_minor: Math.round(Number(given.value.replace(",", ".")) * 100) });
          },
        }, el("label", { for: "cash" }, t.cashGiven), given,
          el("button", { type: "submit", class: "primary", id: "pay-cash" }, t.payCash)),
        el("form", {
          onsubmit: (ev) => {
            ev.preventDefault();
            pay({ kind: "card", reference: reference.value.trim() });
          },
        }, el("label", { for: "card-ref" }, t.cardReference), reference,
          el("button", { type: "submit", id: "pay-card" }, t.payCard)),
        el("form", {
          onsubmit: (ev) => {
            ev.preventDefault();
            // A supervisor approves by being signed in; others need one's PIN.
            pay(bossHere ? { kind: "comp" } : { kind: "comp", approver_pin: approver.value });
          },
        }, bossHere ? "" : el("label", { for: "approver-pin" }, t.approverPin), bossHere ? "" : approver,
          el("button", { type: "submit", id: "pay-comp" }, t.payComp)));
    } catch (e) {
      if (e.status === 401) return signInScreen(t.sessionExpired);
      hold = null;
      out.replaceChildren(errorBox(e));
    }
  }
  // A walk-up ticket, paid cash, its QR code on screen.
  const tiers = (state.event && state.event.tiers) || [];
  const tier = el("select", { id: "tier" }, ...tiers.map((x) => el("option", { value: x.id }, `${x.name} · ${money(x.price_minor, state.event.event.currency)}`)));
  const referral = el("input", { id: "referral", autocomplete: "off" });
  const holderName = el("input", { id: "holder-name", autocomplete: "off" });
  const walkCash = el("input", { id: "walkup-cash", inputmode: "decimal", autocomplete: "off" });
  const walkOut = el("div", { id: "walkup-out" });
  main.querySelector("section").append(el("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const body = { tier: tier.value, nonce: nonce(), tender: { kind: "cash", given_minor: Math.round(Number(walkCash.value.replace(",", ".")) * 100) } };
      if (referral.value.trim()) body.referral_code = referral.value.trim();
      if (holderName.value.trim()) body.holder = holderName.value.trim();
      try {
        const order = await api("POST", "/api/v1/walkups", body);
        walkOut.replaceChildren(...(await ticketView(order, "walkup")));
      } catch (e) {
        if (e.status === 401) return signInScreen(t.sessionExpired);
        walkOut.replaceChildren(errorBox(e));
      }
    },
  }, el("h3", {}, t.walkupTitle),
    el("label", { for: "tier" }, t.tier), tier,
    el("label", { for: "referral" }, t.referral), referral,
    el("label", { for: "holder-name" }, t.holderName), holderName,
    el("label", { for: "walkup-cash" }, t.walkupCash), walkCash,
    el("button", { type: "submit", class: "primary", id: "sell-ticket" }, t.sellTicket), walkOut));
  // A scholarship seat by code (free, or discounted and paid cash).
  const claimCode = el("input", { id: "claim-code", autocomplete: "off", autocapitalize: "characters" });
  const claimHolder = el("input", { id: "claim-holder", autocomplete: "off" });
  const claimCash = el("input", { id: "claim-cash", inputmode: "decimal", autocomplete: "off" });
  const claimOut = el("div", { id: "claim-out" });
  main.querySelector("section").append(el("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const body = { code: claimCode.value.trim(), nonce: nonce() };
      if (claimHolder.value.trim()) body.holder = claimHolder.value.trim();
      if (claimCash.value.trim()) body.tender = { kind: "cash", given_minor: Math.round(Number(claimCash.value.replace(",", ".")) * 100) };
      try {
        const order = await api("POST", "/api/v1/scholarships/claims", body);
        claimOut.replaceChildren(...(await ticketView(order, "claim")));
      } catch (e) {
        if (e.status === 401) return signInScreen(t.sessionExpired);
        claimOut.replaceChildren(errorBox(e));
      }
    },
  }, el("h3", {}, t.claimTitle),
    el("label", { for: "claim-code" }, t.claimCode), claimCode,
    el("label", { for: "claim-holder" }, t.claimHolder), claimHolder,
    el("label", { for: "claim-cash" }, t.claimCash), claimCash,
    el("button", { type: "submit", class: "primary", id: "claim-seat" }, t.claimSeat), claimOut));
  renderCart();
  try {
    await renderDrops();
  } catch (e) {
    out.replaceChildren(errorBox(e));
  }
  // Live stock: the drop feed (every change, from any till).
  events("/api/v1/drops/feed", stop.signal, (name) => {
    if (name === "drops") renderDrops().catch(() => {});
  }).catch(() => {});
}

// --- capture -------------------------------------------------------------------

async function sha256Hex(file) {
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function loadScript(src, global) {
  if (window[global]) return Promise.resolve();
  return new Promise((ok, fail) => {
    const s = document.createElement("script");
    s.src = src;
    s.onload = ok;
    s.onerror = fail;
    document.head.append(s);
  });
}

async function captureScreen() {
  const creators = (state.event && state.event.creators) || [];
  const creator = el("select", { id: "creator" }, ...creators.map((c) => el("option", { value: c.id }, c.name)));
  const consent = el("input", { id: "consent", type: "checkbox" });
  const files = el("input", { id: "files", type: "file", accept: "image/*,video/*", multiple: true });
  const list = el("ul", { id: "uploads" });
  const form = el("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      await loadScript("/app/vendor/tus.min.js", "tus");
      const picked = [...files.files];
      // Ask first which files the box already has (same bytes, same hash).
      const hashes = await Promise.all(picked.map(sha256Hex));
      const { present } = await api("POST", "/api/v1/captures/check", { sha256: hashes });
      picked.forEach((file, i) => {
        const progress = el("progress", { max: 100, value: 0, "aria-label": file.name });
        const note = el("span", { class: "upload-state" });
        list.append(el("li", { "data-sha256": hashes[i] }, `${file.name} `, progress, " ", note));
        if (present.includes(hashes[i])) {
          progress.value = 100;
          note.textContent = t.alreadyOnBox;
          return;
        }
        const upload = new window.tus.Upload(file, {
          endpoint: "/api/v1/uploads/",
          headers: { authorization: `Bearer ${state.token}` },
          metadata: { creator: creator.value, consent: String(consent.checked), filename: file.name, filetype: file.type },
          chunkSize: 4 * 1024 * 1024,
          // A Wi-Fi drop: try again, from what reached the box's disk.
          retryDelays: [0, 500, 1000, 2000, 5000, 10000],
          storeFingerprintForResuming: true,
          removeFingerprintOnSuccess: true,
          onProgress: (sent, total) => (progress.value = Math.floor((sent / total) * 100)),
          onSuccess: () => {
            progress.value = 100;
            note.textContent = t.uploaded;
            announce(`${file.name}: ${t.uploaded}`);
          },
          onError: (e) => (note.textContent = t.uploadFailed(e.message || e)),
        });
        // After a reload the same file resumes where the box left it.
        upload.findPreviousUploads().then((previous) => {
          if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
          upload.start();
        });
      });
    },
  },
    el("label", { for: "creator" }, t.creator), creator,
    el("label", { for: "files" }, t.files), files,
    el("label", { class: "check" }, consent, " ", t.consent),
    el("button", { type: "submit", class: "primary", id: "upload" }, t.upload));
  show(el("section", {}, el("h2", {}, t.captureTitle), form, list));
}

/** What to stop when the screen changes (a feed, a timer, the camera). */
let leave = () => {};

function nav() {
  const role = state.who.role;
  const boss = role === "supervisor" || role === "admin";
  const screens = [];
  if (role === "door" || boss) screens.push(["door", t.navDoor, doorScreen]);
  if (role === "merch" || boss) screens.push(["merch", t.navMerch, merchScreen]);
  if (role === "capture" || boss) screens.push(["capture", t.navCapture, captureScreen]);
  if (boss) screens.push(["dashboard", t.navDashboard, dashboardScreen]);
  if (screens.length < 2) return null;
  return el("nav", { "aria-label": "Screens" }, ...screens.map(([id, label, open]) =>
    el("button", { type: "button", id: `nav-${id}`, onclick: () => { leave(); leave = () => {}; open(); } }, label)));
}

async function home() {
  const who = document.getElementById("who");
  const out = document.getElementById("sign-out");
  if (!state.who) state.who = await api("GET", "/api/v1/session");
  who.textContent = t.signedInAs(state.who.name, state.who.role);
  out.hidden = false;
  out.textContent = t.signOut;
  out.onclick = async () => {
    await api("DELETE", "/api/v1/session").catch(() => {});
    state.token = null;
    state.who = null;
    sessionStorage.removeItem(TOKEN_KEY);
    who.textContent = "";
    out.hidden = true;
    leave();
    document.getElementById("nav")?.remove();
    signInScreen();
  };
  state.event = await api("GET", "/api/v1/event").catch(() => null);
  document.getElementById("nav")?.remove();
  const screens = nav();
  if (screens) {
    screens.id = "nav";
    main.before(screens);
  }
  const first = { merch: merchScreen, capture: captureScreen }[state.who.role] || doorScreen;
  await first();
}

async function boot() {
  document.getElementById("title").textContent = t.title;
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
  if (!state.device || new URLSearchParams(location.hash.slice(1)).get("code")) return pairScreen();
  try {
    if (!state.token) {
      // Is the box there at all? Say so before asking for a PIN.
      await api("GET", "/healthz");
      return signInScreen();
    }
    await home();
  } catch (e) {
    if (e.status === 401) return signInScreen();
    show(errorBox(e));
  }
}

boot();
