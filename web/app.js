// @ts-check
// The staff app: pairing, PIN sign-in and the screens each role sees.
// Served by the box (embedded in the binary), talking only to the box's own
// API. Every text a guest could have chosen (holder names) is set with
// textContent, never as HTML.
import { t } from "./strings.js";
import { DEVICE_KEY, TOKEN_KEY, announce, el, errorBox, main, may, onReconnect, screen, show, state } from "./ui.js";
import * as api from "./api.js";
import { arrive, watchPeer } from "./takeover.js";
import { doorScreen, unlockSound } from "./door.js";
import { merchScreen } from "./merch.js";
import { captureScreen } from "./capture.js";
import { dashboardScreen } from "./dashboard.js";
import { adminScreen } from "./admin.js";

// --- pairing ---------------------------------------------------------------

function pairScreen(message) {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("pair") || "";
  const code = el("input", { id: "pair-code", name: "code", autocomplete: "off", autocapitalize: "characters", value: fromLink, required: true });
  const name = el("input", { id: "pair-name", name: "name", value: t.deviceNameDefault, required: true });
  const out = el("div");
  const form = el("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const r = await api.pair(code.value.trim(), name.value.trim());
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
    // The tap that signs in also allows the door's sound for the shift.
    unlockSound();
    try {
      const r = await api.signIn(pin, state.device);
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
  // Each key's name is what it shows (a screen reader says what is seen).
  const key = (label, aria, action) => el("button", { type: "button", class: "key", "aria-label": aria === label ? null : aria, onclick: action }, label);
  const pad = el("div", { class: "keypad" },
    ..."123456789".split("").map((d) => key(d, d, () => { if (pin.length < 12) pin += d; render(); })),
    key("⌫", t.keyDelete, () => { pin = pin.slice(0, -1); render(); }),
    key("0", "0", () => { if (pin.length < 12) pin += "0"; render(); }),
    key(t.keyOk, t.keyOk, submit));
  show(el("section", {}, el("h2", {}, t.signInTitle), message ? el("p", { role: "alert" }, message) : "", dots, pad, out));
}

screen.signIn = (message) => signInScreen(message);

function nav() {
  const screens = [];
  if (may("door")) screens.push(["door", t.navDoor, doorScreen]);
  if (may("merch")) screens.push(["merch", t.navMerch, merchScreen]);
  if (may("capture")) screens.push(["capture", t.navCapture, captureScreen]);
  if (may("dashboard")) screens.push(["dashboard", t.navDashboard, dashboardScreen]);
  if (may("admin")) screens.push(["admin", t.navAdmin, adminScreen]);
  if (screens.length < 2) return null;
  return el("nav", { "aria-label": "Screens" }, ...screens.map(([id, label, open]) =>
    el("button", { type: "button", id: `nav-${id}`, onclick: () => { screen.leave(); screen.leave = () => {}; open(); } }, label)));
}

async function home() {
  const who = document.getElementById("who");
  const out = document.getElementById("sign-out");
  if (!state.who) state.who = await api.whoAmI();
  who.textContent = t.signedInAs(state.who.name, t.roles[state.who.role] || state.who.role);
  out.hidden = false;
  out.textContent = t.signOut;
  out.onclick = async () => {
    await api.signOut().catch(() => {});
    state.token = null;
    state.who = null;
    sessionStorage.removeItem(TOKEN_KEY);
    who.textContent = "";
    out.hidden = true;
    screen.leave();
    document.getElementById("nav")?.remove();
    signInScreen();
  };
  state.event = await api.event().catch(() => null);
  document.getElementById("nav")?.remove();
  const screens = nav();
  if (screens) {
    screens.id = "nav";
    main.before(screens);
  }
  const first = { merch: merchScreen, capture: captureScreen }[state.who.role] || doorScreen;
  await first();
}

/** A creator's upload link (#link=TOKEN&creator=ID&name=NAME): no pairing,
 * no PIN; the token may only upload for that creator and read their own
 * captures and figures. The link stays in the address, so a reload (or a
 * bookmark) opens the same page. */
async function linkPage(params) {
  state.token = params.get("link");
  const creator = { id: params.get("creator") || "", name: params.get("name") || params.get("creator") || "" };
  document.getElementById("who").textContent = creator.name;
  try {
    await captureScreen(creator);
  } catch (e) {
    show(e.status === 401 ? el("p", { role: "alert" }, t.linkExpired) : errorBox(e));
  }
}

async function boot() {
  document.getElementById("title").textContent = t.title;
  document.documentElement.lang = t.lang;
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("link")) return linkPage(params);
  // Moved here from the other box of a pair: same pairing, same sign-in.
  arrive();
  watchPeer();
  if (!state.device || new URLSearchParams(location.hash.slice(1)).get("pair")) return pairScreen();
  try {
    if (!state.token) {
      // Is the box there at all? Say so before asking for a PIN.
      await api.health();
      return signInScreen();
    }
    await home();
  } catch (e) {
    if (e.status === 401) return signInScreen();
    if (e.code !== "unreachable") return show(errorBox(e));
    // The box is away (restarting, or the Wi-Fi; the bar above says so):
    // start again by itself when it is back, no reload needed.
    show(el("p", { id: "waiting" }, t.carryOnWhenBack));
    const off = onReconnect(() => { off(); boot(); });
  }
}

boot();
