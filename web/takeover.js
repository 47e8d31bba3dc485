// @ts-check
// Two boxes, one event: the app follows the primary. It keeps the newest
// epoch it has seen, with that box's signature (sent on every call as
// X-Venuebox-Epoch, so an old primary that comes back fences itself at the
// first phone), and the other box's address (from /healthz). When this box
// cannot be reached or says it is not the primary, the app asks the other
// box; if that one is the primary, the app moves there carrying its
// pairing and sign-in in the address's fragment (which no server sees):
// no pairing again, no PIN. Both boxes hold the same devices and sessions.
import { t } from "./strings.js";
import { DEVICE_KEY, TOKEN_KEY, el, markDown, state } from "./ui.js";

const KEY = "venuebox.pair";
const PARAM = "takeover";

/** @typedef {{epoch: number, proof: string, peer: string | null}} Known */

/** @returns {Known} */
function known() {
  try {
    const k = JSON.parse(localStorage.getItem(KEY) || "null");
    if (k && typeof k.epoch === "number") return k;
  } catch { /* nothing kept yet */ }
  return { epoch: 0, proof: "", peer: null };
}

/** Keeps what a box's /healthz says: its epoch proof if newer, the peer. @param {any} h */
export function remember(h) {
  if (!h || typeof h.epoch !== "number" || typeof h.epoch_proof !== "string") return;
  const k = known();
  const newer = h.epoch >= k.epoch;
  localStorage.setItem(KEY, JSON.stringify({
    epoch: newer ? h.epoch : k.epoch,
    proof: newer ? h.epoch_proof : k.proof,
    peer: typeof h.peer === "string" ? h.peer : k.peer,
  }));
}

/** What every call carries: the newest epoch seen, signed. */
export function epochProof() {
  return known().proof || null;
}

let looking = false;

/**
 * Asks the other box whether it is the primary; if it is (at an epoch at
 * least as new as any seen), moves the app there. With `onlyNewer`, moves
 * only to a newer epoch (a background look while this box answers).
 * @param {boolean} [onlyNewer]
 */
export async function lookForPrimary(onlyNewer = false) {
  const k = known();
  if (looking || !k.peer || !state.device) return;
  looking = true;
  try {
    const r = await fetch(`${k.peer}/healthz`, { cache: "no-store", mode: "cors", signal: AbortSignal.timeout(3000) });
    const h = await r.json();
    if (h.role === "standby" && !onlyNewer) return offerStandby(k.peer, h);
    if (h.role !== "primary" || h.epoch < k.epoch || (onlyNewer && h.epoch === k.epoch)) return;
    move(k.peer, h);
  } catch {
    // The other box is not there either: this box's own probe goes on.
  } finally {
    looking = false;
  }
}

/** Moves the app to `peer`, carrying its pairing and sign-in. */
function move(peer, h) {
  const carry = { device: state.device, token: state.token, proof: h.epoch_proof, epoch: h.epoch, peer: location.origin };
  location.assign(`${peer}/#${PARAM}=${encodeURIComponent(btoa(JSON.stringify(carry)))}`);
}

/** This box is gone and the other is a standby: an admin may go there
 * to promote it (its admin screen), with one tap in the link bar. */
function offerStandby(peer, h) {
  const bar = document.getElementById("link");
  if (!bar || bar.hidden || !state.who || state.who.role !== "admin" || document.getElementById("open-standby")) return;
  bar.append(el("button", { type: "button", id: "open-standby", class: "primary", onclick: () => move(peer, h) }, t.openStandby));
}

/** On arrival from the other box: takes the pairing and sign-in it
 * carried, and clears them from the address. True when it did. */
export function arrive() {
  const raw = new URLSearchParams(location.hash.slice(1)).get(PARAM);
  if (!raw) return false;
  history.replaceState(null, "", location.pathname);
  let c;
  try {
    c = JSON.parse(atob(raw));
  } catch {
    return false;
  }
  if (typeof c.device === "string") {
    state.device = c.device;
    localStorage.setItem(DEVICE_KEY, c.device);
  }
  if (typeof c.token === "string") {
    state.token = c.token;
    sessionStorage.setItem(TOKEN_KEY, c.token);
  }
  remember({ epoch: c.epoch, epoch_proof: c.proof, peer: c.peer });
  return true;
}

/** The bar saying this entrance is cut off from the main box. @param {boolean} apart */
function showApart(apart) {
  let bar = document.getElementById("apart");
  if (!apart) {
    if (bar) bar.remove();
    return;
  }
  if (bar) return;
  bar = el("div", { id: "apart", class: "link-down", role: "status" }, t.apart);
  document.body.prepend(bar);
}

/** Looks at this box now and then (keeping its epoch and the other box's
 * address, from pairing on), and at the other box when this one is gone
 * or answers at an older epoch: a takeover, or two primaries after a
 * promotion during a cut, resolves to the newer primary. */
export function watchPeer() {
  const look = async () => {
    let here = true;
    try {
      const r = await fetch("/healthz", { cache: "no-store", signal: AbortSignal.timeout(3000) });
      const h = await r.json();
      // A satellite is an entrance of its own: its phones stay with it,
      // and say when it decides alone, cut off from the main box.
      if (h && h.role === "satellite") return showApart(h.apart === true);
      remember(h);
    } catch {
      // Gone, even with nothing touched: say so now (the link bar and
      // its probe), not at the next scan.
      here = false;
      if (state.token) markDown();
    }
    if (state.token) lookForPrimary(here);
  };
  look();
  setInterval(look, 5000);
}
