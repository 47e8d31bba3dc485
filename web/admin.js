// @ts-check
// The admin's screen: rehearse before doors, pair another phone, creators' upload links, the
// event manifest (import a signed file, freeze cloud updates), drops
// (create, edit, restock) and the staff sessions (revoke one).
import { t } from "./strings.js";
import { announce, el, errorBox, minor, money, screen, show, state, table, timeOfDay } from "./ui.js";
import * as api from "./api.js";

/** A form whose submit runs `action` and shows its result or error in `out`. */
function form(id, title, fields, button, action) {
  const out = el("div", { id: `${id}-out`, role: "status" });
  return el("form", {
    id,
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        out.replaceChildren(...[].concat(await action()));
      } catch (e) {
        if (e.status === 401) return screen.signIn(t.sessionExpired);
        out.replaceChildren(e instanceof api.ApiError ? errorBox(e) : el("p", { class: "error", role: "alert" }, e.message));
      }
    },
  }, title ? el("h3", {}, title) : "", ...fields, el("button", { type: "submit", class: "primary" }, button), out);
}

/** A labelled input: [label, input]. */
function field(id, label, attrs = {}) {
  const input = el(attrs.tag || "input", { id, autocomplete: "off", ...attrs, tag: null });
  return [el("label", { for: id }, label), input];
}

/** Says which device took the code `codeId` (polled until it expires), with revocation in one tap. */
function watchCode(codeId, expiresAt, out) {
  const until = Date.parse(expiresAt);
  const look = async () => {
    if (!out.isConnected || Date.now() > until) return;
    const { devices } = await api.pairedDevices().catch(() => ({ devices: [] }));
    const d = devices.find((x) => x.code_id === codeId);
    if (!d) return setTimeout(look, 2000);
    const at = timeOfDay(d.paired_at, true);
    const revoke = el("button", { type: "button", class: "danger", onclick: async () => {
      try {
        await api.unpair(d.id);
        out.replaceChildren(el("p", { role: "status" }, t.deviceRevoked(d.name)));
      } catch (e) {
        out.append(errorBox(e));
      }
    } }, t.revokeDevice(d.name));
    out.replaceChildren(el("p", { role: "status", id: "code-taken" }, t.codeTaken(d.name, d.paired_from, at)), revoke);
  };
  setTimeout(look, 2000);
}

function pairing() {
  return form("pair-device", t.pairAnother, [el("p", {}, t.pairAnotherHelp)], t.newPairingCode, async () => {
    const c = await api.pairingCode();
    const taken = el("div", { id: "code-status" }, el("p", {}, t.codeWaiting));
    watchCode(c.code_id, c.expires_at, taken);
    return [el("p", { class: "big", id: "new-pairing-code" }, c.code), el("p", {}, t.until(c.expires_at)),
      c.pair_url ? el("p", {}, el("a", { href: c.pair_url }, c.pair_url)) : "", taken];
  });
}

function uploadLinks() {
  const creators = (state.event && state.event.creators) || [];
  const [cl, creator] = field("link-creator", t.creator, { tag: "select" });
  creator.append(...creators.map((c) => el("option", { value: c.id }, c.name)));
  const [hl, hours] = field("link-hours", t.linkHours, { type: "number", min: 1, max: 336, value: 24 });
  return form("upload-link", t.uploadLinkTitle, [cl, creator, hl, hours], t.makeLink, async () => {
    const l = await api.uploadLink(creator.value, Number(hours.value));
    const name = creator.selectedOptions[0].textContent;
    const url = `${location.origin}/#link=${encodeURIComponent(l.token)}&creator=${encodeURIComponent(l.creator)}&name=${encodeURIComponent(name)}`;
    const copy = el("button", { type: "button", onclick: () => navigator.clipboard?.writeText(url) }, t.copyLink);
    return [el("p", {}, t.linkFor(name, l.expires_at)), el("p", { class: "link" }, el("a", { id: "new-upload-link", href: url }, url)), copy];
  });
}

function manifest(frozen) {
  const [ml, file] = field("manifest-file", t.manifestFile, { type: "file", accept: ".json,application/json" });
  const [sl, sig] = field("manifest-sig", t.manifestSig, { type: "file", accept: ".sig" });
  const importForm = form("manifest-import", t.manifestTitle, [ml, file, sl, sig], t.importManifest, async () => {
    if (!file.files[0] || !sig.files[0]) throw new Error(t.manifestBoth);
    const r = await api.importManifest(await file.files[0].text(), (await sig.files[0].text()).trim());
    state.event = await api.event().catch(() => state.event);
    return el("p", { id: "manifest-done" }, t.manifestDone(r.outcome, r.event_id, r.version));
  });
  const freeze = el("input", { id: "freeze", type: "checkbox", checked: frozen });
  const said = el("span", { role: "status" });
  freeze.addEventListener("change", async () => {
    try {
      await api.freezeManifest(freeze.checked);
      said.textContent = freeze.checked ? t.frozen : t.unfrozen;
    } catch (e) {
      freeze.checked = !freeze.checked;
      said.replaceChildren(errorBox(e));
    }
  });
  importForm.append(el("label", { class: "check" }, freeze, " ", t.freeze), said);
  return importForm;
}

/** Product rows of the drop form: sku, name, variant, price, quantity. */
function productRow(p = {}) {
  const n = document.querySelectorAll(".product-row").length + 1;
  const cell = (key, label, attrs) => field(`p${n}-${key}`, t.productField(label, n), attrs);
  return el("fieldset", { class: "product-row" }, el("legend", {}, t.productN(n)),
    ...cell("sku", t.sku, { value: p.sku || "", required: true }),
    ...cell("name", t.productName, { value: p.name || "", required: true }),
    ...cell("variant", t.variant, { value: p.variant || "" }),
    ...cell("price", t.price, { inputmode: "decimal", value: p.price_minor != null ? (p.price_minor / 100).toFixed(2) : "", required: true }),
    ...cell("quantity", t.startQuantity, { type: "number", min: 0, value: p.on_hand ?? "", required: true }));
}

/** datetime-local ⇄ RFC 3339 in UTC (the box's clock is UTC). */
const local = (iso) => (iso ? iso.slice(0, 16) : "");
const utc = (v) => `${v}:00Z`;

function dropForm(list, existing) {
  const d = existing || {};
  const creators = (state.event && state.event.creators) || [];
  const [il, id] = field("drop-id", t.dropId, { value: d.id || "", required: true, readonly: !!existing });
  const [nl, name] = field("drop-name", t.dropName, { value: d.name || "", required: true });
  const [cl, creator] = field("drop-creator", t.creator, { tag: "select" });
  creator.append(...creators.map((c) => el("option", { value: c.id, selected: c.id === d.creator }, c.name)));
  const [ol, opens] = field("drop-opens", t.opensAt, { type: "datetime-local", value: local(d.opens_at), required: true });
  const [xl, closes] = field("drop-closes", t.closesAt, { type: "datetime-local", value: local(d.closes_at), required: true });
  const [ll, limit] = field("drop-limit", t.perGuest, { type: "number", min: 1, value: d.per_attendee_limit ?? "" });
  const rows = el("div", {}, ...(d.products || [{}]).map((p) => productRow(p)));
  const more = el("button", { type: "button", onclick: () => rows.append(productRow()) }, t.addProduct);
  return form("drop-form", existing ? t.editDrop(d.name) : t.newDrop,
    [il, id, nl, name, cl, creator, ol, opens, xl, closes, ll, limit, rows, more], existing ? t.saveDrop : t.createDrop, async () => {
      const products = [...rows.querySelectorAll(".product-row")].map((r) => {
        const v = (k) => r.querySelector(`[id$="-${k}"]`).value.trim();
        const p = { sku: v("sku"), name: v("name"), price_minor: minor(v("price"), state.event.event.currency), quantity: Number(v("quantity")) };
        if (v("variant")) p.variant = v("variant");
        return p;
      });
      const body = { id: id.value.trim(), name: name.value.trim(), creator: creator.value, opens_at: utc(opens.value), closes_at: utc(closes.value), products };
      if (limit.value) body.per_attendee_limit = Number(limit.value);
      if (existing) await api.updateDrop(body.id, { ...body, on_close: d.on_close, reserve: d.reserve || undefined });
      else await api.createDrop(body);
      await list();
      return el("p", { id: "drop-saved" }, t.dropSaved(body.name));
    });
}

function restockForm(d, list) {
  const [sl, sku] = field(`restock-sku-${d.id}`, t.product, { tag: "select" });
  sku.append(...d.products.map((p) => el("option", { value: p.sku }, p.variant ? `${p.name} (${p.variant})` : p.name)));
  const [ql, qty] = field(`restock-qty-${d.id}`, t.restockQuantity, { type: "number", min: 1, value: 1, required: true });
  const [rl, reason] = field(`restock-reason-${d.id}`, t.restockReason, { required: true });
  const pool = el("input", { id: `restock-pool-${d.id}`, type: "checkbox" });
  return form(`restock-${d.id}`, "", [sl, sku, ql, qty, rl, reason, el("label", { class: "check" }, pool, " ", t.fromPool)], t.restockButton, async () => {
    await api.restock(d.id, { sku: sku.value, quantity: Number(qty.value), reason: reason.value, from_pool: pool.checked });
    // The list is drawn again (this form with it): say it in the status line.
    await list();
    announce(t.restocked);
    return [];
  });
}

function drops() {
  const box = el("div", { id: "admin-drops" });
  const editor = el("div");
  const list = async () => {
    const { drops: all } = await api.drops();
    box.replaceChildren(el("h3", {}, t.drops), ...all.map((d) => el("div", { class: "drop" },
      el("h4", {}, `${d.name} · ${d.phase}`),
      table([t.product, t.price, t.onHand, t.available], d.products.map((p) => [p.variant ? `${p.name} (${p.variant})` : p.name, money(p.price_minor, d.currency), p.on_hand, p.available])),
      el("button", { type: "button", onclick: () => editor.replaceChildren(dropForm(list, d)) }, t.editDrop(d.name)),
      // Folded away: a screen of restock forms hides everything else.
      el("details", {}, el("summary", {}, t.restock(d.name)), restockForm(d, list)))),
    el("button", { type: "button", id: "new-drop", onclick: () => editor.replaceChildren(dropForm(list)) }, t.newDrop));
  };
  list().catch((e) => box.replaceChildren(errorBox(e)));
  return el("div", {}, box, editor);
}

function sessions() {
  const box = el("div", { id: "admin-sessions" });
  const load = async () => {
    const { sessions: all } = await api.sessions();
    box.replaceChildren(el("h3", {}, t.sessions), el("ul", {}, ...all.map((s) => el("li", {},
      `${s.staff} (${s.role})${s.device ? ` · ${s.device}` : ""} · ${t.until(timeOfDay(s.expires_at))} `,
      el("button", {
        type: "button", "aria-label": t.revokeWho(s.staff),
        onclick: async () => {
          await api.endSession(s.id).catch((e) => box.append(errorBox(e)));
          load().catch(() => {});
        },
      }, t.revoke)))));
  };
  load().catch((e) => box.replaceChildren(errorBox(e)));
  return box;
}

/** Paired phones, the wrong PINs sent from each (a guessing phone stands
 * out; at 20 the box unpairs it), revoking in one tap, and clearing the
 * PIN locks after a burst of wrong PINs. */
function devices() {
  const box = el("div", { id: "admin-devices" });
  const load = async () => {
    const { devices: all } = await api.pairedDevices();
    const live = all.filter((d) => !d.revoked_at);
    const unlock = el("button", { type: "button", id: "clear-pin-locks", onclick: async () => {
      try {
        await api.clearSignInLocks();
        announce(t.locksCleared);
      } catch (e) {
        box.append(errorBox(e));
      }
    } }, t.clearLocks);
    box.replaceChildren(el("h3", {}, t.pairedDevices), el("ul", {}, ...live.map((d) => el("li", { class: d.wrong_pins >= 5 ? "error" : "" },
      `${d.name}${d.paired_from ? ` · ${d.paired_from}` : ""} · ${t.wrongPins(d.wrong_pins)} `,
      el("button", {
        type: "button", "aria-label": t.unpairDevice(d.name),
        onclick: async () => {
          await api.unpair(d.id).catch((e) => box.append(errorBox(e)));
          load().catch(() => {});
        },
      }, t.unpair)))), unlock);
  };
  load().catch((e) => box.replaceChildren(errorBox(e)));
  return box;
}

/** The box has no battery clock: give it this phone's time. */
function clock() {
  return form("set-clock", t.clockTitle, [el("p", {}, t.clockHelp)], t.setClock, async () => {
    let r;
    try {
      r = await api.setClock(new Date().toISOString(), false);
    } catch (e) {
      // A jump of hours: the box asks for a second "yes".
      if (e.code !== "confirm_clock_jump" || !window.confirm(e.message)) throw e;
      r = await api.setClock(new Date().toISOString(), true);
    }
    return el("p", { id: "clock-set" }, t.clockSet(r.now.slice(0, 19).replace("T", " ")));
  });
}

/** Before doors: the box's readiness report, each line saying what to fix. */
function rehearsal() {
  return form("rehearse", t.rehearseTitle, [el("p", {}, t.rehearseHelp)], t.rehearse, async () => {
    const r = await api.rehearse();
    return [el("p", { id: "rehearsal-verdict", class: r.ready ? "ok" : "error" }, r.ready ? t.rehearsalReady : t.rehearsalNotReady),
      el("ul", { id: "rehearsal-checks" }, ...r.checks.map((c) =>
        el("li", { class: c.ready ? "ok" : "error" }, `${c.ready ? t.ok : t.fix} ${c.check}: ${c.said}`)))];
  });
}

/** On the primary: a one-time code and the command that makes a second
 * box its standby. */
function addStandby(pair) {
  if (!pair || pair.role !== "primary") return "";
  return form("add-standby", t.addStandbyTitle, [el("p", {}, t.addStandbyHelp)], t.newStandbyCode, async () => {
    const c = await api.standbyCode();
    return [el("p", { class: "big", id: "standby-code" }, c.code), el("p", {}, t.until(c.expires_at)),
      c.command ? el("pre", { id: "join-command" }, c.command) : el("p", {}, t.standbyFingerprint(c.fingerprint))];
  });
}

/** On a standby: promote it, when the primary is gone. */
function promotion(pair) {
  if (!pair || pair.role !== "standby") return "";
  return form("promote", t.promoteTitle, [el("p", {}, t.promoteHelp)], t.promote, async () => {
    const now = await api.pairStatus();
    if (now.link.connected && !window.confirm(t.promoteConnected)) return [];
    const r = await api.promote();
    return el("p", { id: "promoted", role: "status" }, t.promoted(r.epoch));
  });
}

export async function adminScreen() {
  const [sync, pair] = await Promise.all([api.syncStatus().catch(() => null), api.pairStatus().catch(() => null)]);
  show(el("section", {}, el("h2", {}, t.adminTitle),
    promotion(pair), rehearsal(), pairing(), addStandby(pair), uploadLinks(), manifest(!!(sync && sync.manifest_updates_frozen)), drops(), devices(), sessions(), clock()));
}
