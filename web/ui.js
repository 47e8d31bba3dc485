// @ts-check
// What every screen of the staff app shares: the app's state, building
// elements, whether the box can be reached, what the staff member's role
// may use, and the hooks a screen uses to hand over to sign-in or to stop
// what it started. Calls to the box are api.js.
import { t } from "./strings.js";
import { health } from "./api.js";
import { lookForPrimary } from "./takeover.js";

export const DEVICE_KEY = "venuebox.device";
export const TOKEN_KEY = "venuebox.token";
export const main = document.getElementById("main");
const status = document.getElementById("status");

/** @type {{device: string | null, token: string | null, who: {name: string, role: string} | null, event: any, draft: string}} */
export const state = {
  device: localStorage.getItem(DEVICE_KEY),
  token: sessionStorage.getItem(TOKEN_KEY),
  who: null,
  event: null,
  // What the door had typed when a sign-in ended, kept for after.
  draft: "",
};

/** Builds an element: el("button", {type: "button", onclick}, "text", child). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v === true) e.setAttribute(k, "");
    else if (v !== false && v != null) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

export function announce(text) {
  status.textContent = text;
}

export function show(...nodes) {
  main.replaceChildren(...nodes);
  main.focus();
}

// --- is the box there? ---------------------------------------------------
// Every screen says when the box cannot be reached and how old what it
// shows is; the app keeps asking (and has a Retry button), and tells the
// screens when the box is back.

const linkBar = document.getElementById("link");
export const link = { up: true, since: 0, lastOk: Date.now(), listeners: new Set() };
let probeTimer = 0, tickTimer = 0;

/** Calls fn each time the box is reachable again after it was not. */
export function onReconnect(fn) {
  link.listeners.add(fn);
  return () => link.listeners.delete(fn);
}

/** "Not reached since 21:14:05: what this screen shows is 12 s old." */
function ageLine() {
  const since = timeOfDay(new Date(link.since).toISOString(), true);
  return t.linkAge(since, Math.round((Date.now() - link.lastOk) / 1000));
}

function renderLink() {
  if (link.up) {
    linkBar.hidden = true;
    linkBar.replaceChildren();
    clearInterval(tickTimer);
    return;
  }
  linkBar.replaceChildren(
    el("p", {}, t.unreachable),
    el("p", { id: "link-age" }, ageLine()),
    el("button", { type: "button", id: "link-retry", onclick: () => probe() }, t.retry));
  linkBar.hidden = false;
}

export function markUp() {
  link.lastOk = Date.now();
  if (link.up) return;
  link.up = true;
  clearTimeout(probeTimer);
  renderLink();
  for (const fn of [...link.listeners]) fn();
}

export function markDown() {
  if (!link.up) return;
  link.up = false;
  link.since = Date.now();
  renderLink();
  clearInterval(tickTimer);
  tickTimer = setInterval(() => { if (!link.up) document.getElementById("link-age").textContent = ageLine(); }, 1000);
  probeTimer = setTimeout(probe, 2000);
}

/** Asks the box whether it is there: now, then every 3 s while it is not. */
async function probe() {
  clearTimeout(probeTimer);
  try {
    await health();
  } catch (e) {
    if (e.status === 0) {
      probeTimer = setTimeout(probe, 3000);
      // Gone: the other box of a pair may have taken over.
      lookForPrimary();
    }
  }
}

/** What went wrong, in the staff member's language, with the box's own
 * words (the details: which gate, how many are left) beneath. */
export function errorBox(e) {
  const said = t.errors[e.code];
  if (e.code === "unreachable" || !said) {
    return el("p", { class: "error", role: "alert" }, e.code === "unreachable" ? e.message : t.error(e.message));
  }
  return el("div", { class: "error", role: "alert" }, el("p", {}, said), el("p", { class: "detail" }, t.error(e.message)));
}

export function nonce() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export function table(headers, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c))))));
}

/** How many digits a currency's minor unit has (JPY 0, EUR 2, KWD 3). */
export function digits(currency) {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  } catch {
    return 2;
  }
}

/** An amount typed as "12,50" or "12.5", in minor units of `currency`. */
export function minor(text, currency) {
  return Math.round(Number(String(text).trim().replace(",", ".")) * 10 ** digits(currency));
}

/** Minor units as staff read money, in their language: "€12.50". */
export function money(minor, currency) {
  const d = digits(currency);
  try {
    return new Intl.NumberFormat(t.locale, { style: "currency", currency, minimumFractionDigits: d, maximumFractionDigits: d }).format(minor / 10 ** d);
  } catch {
    return `${(minor / 10 ** d).toFixed(d)} ${currency}`;
  }
}

/** A time as staff read it: "21:14" in the event's time zone. */
export function timeOfDay(iso, seconds = false) {
  const zone = state.event && state.event.event && state.event.event.timezone;
  /** @type {Intl.DateTimeFormatOptions} */
  const opts = { hour: "2-digit", minute: "2-digit", ...(seconds ? { second: "2-digit" } : {}) };
  try {
    return new Intl.DateTimeFormat(t.locale, { ...opts, timeZone: zone || undefined }).format(new Date(iso));
  } catch {
    return new Intl.DateTimeFormat(t.locale, opts).format(new Date(iso));
  }
}

export function loadScript(src, global) {
  if (window[global]) return Promise.resolve();
  return new Promise((ok, fail) => {
    const s = document.createElement("script");
    s.src = src;
    s.onload = ok;
    s.onerror = fail;
    document.head.append(s);
  });
}

/**
 * Whether the signed-in staff member's role may use `what` (the box
 * decides every call by the role; this only chooses what the app shows):
 * a screen ("door", "merch", "capture", "dashboard", "admin") or
 * "supervise" (undo, voids, refunds, comps without a second PIN).
 * @param {"door" | "merch" | "capture" | "dashboard" | "admin" | "supervise"} what
 */
export function may(what) {
  const role = state.who ? state.who.role : "";
  const boss = role === "supervisor" || role === "admin";
  switch (what) {
    case "door": case "merch": case "capture": return role === what || boss;
    case "dashboard": case "supervise": return boss;
    case "admin": return role === "admin";
  }
}

/** What to stop when the screen changes (a feed, a timer, the camera),
 * and how a screen returns to sign-in when the box says the sign-in ended. */
/** @type {{leave: () => void, signIn: (message?: string) => void}} */
export const screen = { leave: () => {}, signIn: () => {} };
