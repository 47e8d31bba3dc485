// @ts-check
// Every call the staff app makes to the box, one function per endpoint
// (the paths are those of /api/v1/openapi.json), over one transport: the
// staff token sent, the box marked reachable or not, and a 401 ending the
// session the call used. Nothing else in the app calls fetch for the API.
import { t } from "./strings.js";
import { TOKEN_KEY, markDown, markUp, state } from "./ui.js";
import { epochProof, lookForPrimary, remember } from "./takeover.js";

export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Calls the box: the answer as JSON (null for 204), a Blob or text.
 * @param {string} method
 * @param {string} path
 * @param {any} [body]
 * @param {"json" | "blob" | "text"} [as]
 * @returns {Promise<any>}
 */
async function call(method, path, body, as = "json") {
  /** @type {Record<string, string>} */
  const headers = { accept: as === "json" ? "application/json" : "*/*" };
  if (body !== undefined) headers["content-type"] = "application/json";
  const sent = state.token;
  if (sent) headers.authorization = `Bearer ${sent}`;
  const proof = epochProof();
  if (proof) headers["x-venuebox-epoch"] = proof;
  let r;
  try {
    r = await fetch(path, { method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    markDown();
    throw new ApiError(0, "unreachable", t.unreachable);
  }
  markUp();
  if (!r.ok) {
    const data = await r.json().catch(() => null);
    const e = data && data.error ? data.error : { code: "http_" + r.status, message: r.statusText };
    // Only the session this call used has ended: a late answer to a call
    // made before a new sign-in must not end the new one.
    if (r.status === 401 && sent && state.token === sent) {
      state.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
    }
    // This box is the standby (or has just been fenced): the other one
    // should be the primary.
    if (r.status === 503 && e.code === "not_primary") lookForPrimary();
    throw new ApiError(r.status, e.code, e.message);
  }
  if (as === "blob") return r.blob();
  if (as === "text") return r.text();
  return r.status === 204 ? null : r.json().catch(() => null);
}

/** @param {string} s */
const enc = (s) => encodeURIComponent(s);

// --- the box and the staff member ------------------------------------------
export const health = () => call("GET", "/healthz").then((h) => { remember(h); return h; });
export const event = () => call("GET", "/api/v1/event");
/** @param {string} code @param {string} name */
export const pair = (code, name) => call("POST", "/api/v1/paired-devices", { code, name });
/** @param {string} pin @param {string | null} device */
export const signIn = (pin, device) => call("POST", "/api/v1/session", { pin, device });
export const whoAmI = () => call("GET", "/api/v1/session");
export const signOut = () => call("DELETE", "/api/v1/session");

// --- the door --------------------------------------------------------------
/** @param {object} body a check-in: code or ticket, gate, nonce, and any confirmations */
export const checkIn = (body) => call("POST", "/api/v1/checkins", body);
/** @param {number} scanId */
export const undoCheckIn = (scanId) => call("POST", `/api/v1/checkins/${scanId}/undo`, {});
/** @param {string} q part of a name, an order code or an email */
export const findTickets = (q) => call("GET", `/api/v1/tickets?q=${enc(q)}`);
export const stats = () => call("GET", "/api/v1/stats");

// --- merch -----------------------------------------------------------------
export const drops = () => call("GET", "/api/v1/drops");
/** @param {string} drop @param {object} body */
export const hold = (drop, body) => call("POST", `/api/v1/drops/${enc(drop)}/holds`, body);
/** @param {string} holdId @param {string} nonce @param {object} tender */
export const checkout = (holdId, nonce, tender) => call("POST", `/api/v1/holds/${enc(holdId)}/checkout`, { nonce, tender });
/** @param {object} body */
export const walkup = (body) => call("POST", "/api/v1/walkups", body);
/** @param {object} body */
export const claimScholarship = (body) => call("POST", "/api/v1/scholarships/claims", body);
export const scholarships = () => call("GET", "/api/v1/scholarships");
/** @param {string} id */
export const order = (id) => call("GET", `/api/v1/orders/${enc(id)}`);
/** @param {string} id @param {"void" | "refund"} kind @param {object} body */
export const closeOrder = (id, kind, body) => call("POST", `/api/v1/orders/${enc(id)}/${kind}`, body);
/** @param {string} id */
export const reprint = (id) => call("POST", `/api/v1/orders/${enc(id)}/print`);
export const printJobs = () => call("GET", "/api/v1/print-jobs");
/** A path the box gave (an order's `receipt_text`): the receipt as text. @param {string} path */
export const receiptText = (path) => call("GET", path, undefined, "text");
/** A path the box gave (a ticket's `qr`): the QR code PNG. @param {string} path */
export const ticketQr = (path) => call("GET", path, undefined, "blob");

// --- captures --------------------------------------------------------------
/** @param {string[]} hashes SHA-256 hex of files a phone may send */
export const capturesPresent = (hashes) => call("POST", "/api/v1/captures/check", { sha256: hashes });
/** @param {string} creator */
export const creatorSummary = (creator) => call("GET", `/api/v1/creators/${enc(creator)}/summary`);
/** @param {string} creator @param {number} limit */
export const creatorCaptures = (creator, limit) => call("GET", `/api/v1/creators/${enc(creator)}/captures?limit=${limit}`);
/** A path the box gave (a capture's `thumbnail`): the JPEG. @param {string} path */
export const thumbnail = (path) => call("GET", path, undefined, "blob");

// --- supervisors and admins ------------------------------------------------
export const devices = () => call("GET", "/api/v1/devices");
export const syncStatus = () => call("GET", "/api/v1/sync");
// --- two boxes --------------------------------------------------------------
export const pairStatus = () => call("GET", "/api/v1/standby");
export const promote = () => call("POST", "/api/v1/standby/promote", {});
export const standbyCode = () => call("POST", "/api/v1/standby/codes", {});
export const pairedDevices = () => call("GET", "/api/v1/paired-devices");
/** @param {string} id */
export const unpair = (id) => call("DELETE", `/api/v1/paired-devices/${enc(id)}`);
export const pairingCode = () => call("POST", "/api/v1/pairing-codes");
export const sessions = () => call("GET", "/api/v1/sessions");
/** @param {string} id */
export const endSession = (id) => call("DELETE", `/api/v1/sessions/${enc(id)}`);
export const clearSignInLocks = () => call("DELETE", "/api/v1/sign-in-locks");
/** @param {string} creator @param {number} hours */
export const uploadLink = (creator, hours) => call("POST", "/api/v1/upload-links", { creator, hours });
/** @param {string} manifest @param {string} signature */
export const importManifest = (manifest, signature) => call("POST", "/api/v1/manifest", { manifest, signature });
/** @param {boolean} frozen */
export const freezeManifest = (frozen) => call("PUT", "/api/v1/sync/manifest-freeze", { frozen });
/** @param {object} spec */
export const createDrop = (spec) => call("POST", "/api/v1/drops", spec);
/** @param {string} id @param {object} spec */
export const updateDrop = (id, spec) => call("PUT", `/api/v1/drops/${enc(id)}`, spec);
/** @param {string} id @param {object} body */
export const restock = (id, body) => call("POST", `/api/v1/drops/${enc(id)}/restock`, body);
/** @param {string} now RFC 3339 @param {boolean} confirm */
export const setClock = (now, confirm) => call("PUT", "/api/v1/clock", confirm ? { now, confirm } : { now });
export const rehearse = () => call("POST", "/api/v1/rehearsal", {});

// --- live feeds --------------------------------------------------------------

/**
 * Reads one server-sent event stream until it ends.
 * @param {string} path @param {AbortSignal} signal
 * @param {(name: string, data: string) => void} onEvent @param {() => void} onOpen
 */
async function readStream(path, signal, onEvent, onOpen) {
  let r;
  try {
    r = await fetch(path, { headers: { authorization: `Bearer ${state.token}` }, signal });
  } catch (e) {
    if (!signal.aborted) markDown();
    throw e;
  }
  markUp();
  if (!r.ok || !r.body) throw new ApiError(r.status, "feed", r.statusText);
  onOpen();
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    markUp();
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

/**
 * Follows a server-sent event stream with the staff token (EventSource
 * cannot send one), calling onEvent(name, data) until signal aborts, and
 * onOpen() each time the box has answered (what happened before is not
 * sent, so a screen reads its figures again). A stream cut by the Wi-Fi
 * or a restart of the box is opened again; a sign-in that ended stops it.
 * @param {string} path @param {AbortSignal} signal
 * @param {(name: string, data: string) => void} onEvent @param {() => void} [onOpen]
 */
async function follow(path, signal, onEvent, onOpen = () => {}) {
  while (!signal.aborted) {
    try {
      await readStream(path, signal, onEvent, onOpen);
    } catch (e) {
      if (signal.aborted || e.status === 401 || e.status === 403) return;
    }
    await new Promise((ok) => setTimeout(ok, 2000));
  }
}

/** Every scan as it is decided. @param {AbortSignal} signal @param {(name: string, data: string) => void} onEvent @param {() => void} [onOpen] */
export const scansFeed = (signal, onEvent, onOpen) => follow("/api/v1/scans/feed", signal, onEvent, onOpen);
/** The drops whenever they change. @param {AbortSignal} signal @param {(name: string, data: string) => void} onEvent @param {() => void} [onOpen] */
export const dropsFeed = (signal, onEvent, onOpen) => follow("/api/v1/drops/feed", signal, onEvent, onOpen);
