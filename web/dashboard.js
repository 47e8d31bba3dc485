// @ts-check
// The supervisor's dashboard: live figures from the box. The door's
// figures follow every verdict (the scans feed; one request at a time,
// however fast the door scans); the rest is refreshed every few seconds.
import { t } from "./strings.js";
import { el, errorBox, money, screen, show, state, table, timeOfDay } from "./ui.js";
import * as api from "./api.js";

const figure = (id, label, n) => el("div", { class: "figure" }, el("span", { class: "n", id }, String(n)), el("span", {}, label));

/** Entries per quarter hour as bars, gaps filled with zeros. */
function arrivalsCurve(arrivals) {
  if (!arrivals.length) return el("p", {}, t.noArrivals);
  const quarter = 15 * 60 * 1000;
  const first = Date.parse(arrivals[0].start), last = Date.parse(arrivals[arrivals.length - 1].start);
  const by = new Map(arrivals.map((a) => [Date.parse(a.start), a.entries]));
  const bars = [];
  for (let at = Math.max(first, last - 31 * quarter); at <= last; at += quarter) bars.push([at, by.get(at) || 0]);
  const top = Math.max(...bars.map(([, n]) => n));
  const hhmm = (ms) => timeOfDay(new Date(ms).toISOString());
  return el("figure", {},
    el("div", { class: "bars", role: "img", "aria-label": t.arrivalsLabel(bars.map(([at, n]) => `${hhmm(at)} ${n}`).join(", ")) },
      ...bars.map(([at, n]) => {
        // Set through the CSSOM: the CSP allows no inline style attributes.
        const bar = el("span", { title: `${hhmm(at)}: ${n}` });
        bar.style.height = `${Math.round((n / top) * 100)}%`;
        return bar;
      })),
    el("figcaption", {}, t.arrivalsCaption(hhmm(bars[0][0]), hhmm(last + quarter), top)));
}

const gateName = (id) => ((state.event && state.event.gates) || []).find((g) => g.id === id)?.name || id;

function doorFigures(stats) {
  const reasons = Object.entries(stats.rejected_by_reason).filter(([, n]) => n > 0);
  return [
    el("div", { class: "figures" },
      figure("inside", t.inside, stats.inside),
      figure("admitted", t.admittedTotal, stats.admitted),
      figure("rejected", t.rejectedTotal, stats.rejected)),
    el("h3", {}, t.arrivals), arrivalsCurve(stats.arrivals || []),
    el("h3", {}, t.perGate),
    table(["", t.gateEntries, t.gateExits, t.gateRejected],
      Object.entries(stats.gates).map(([g, c]) => [gateName(g), c.entries, c.exits, c.rejected])),
    reasons.length ? el("h3", {}, t.refusedWhy) : "",
    reasons.length ? table(["", ""], reasons.map(([r, n]) => [t.reasons[r] || r, n])) : "",
  ];
}

/** Two boxes: which is primary, the epoch, the link, captures copied,
 * and what an old primary took alone. Nothing for a box on its own. */
function pairFigures(pair) {
  const satellites = (pair && pair.link.satellites) || [];
  const escrow = (pair && pair.escrow) || [];
  if (!pair || (!pair.link.peer && !satellites.length && !escrow.length)) return [];
  const l = pair.link;
  const report = pair.takeover_report || [];
  const time = (/** @type {number | null} */ ms) => ms ? new Date(ms).toLocaleTimeString() : "";
  const satellite = pair.role === "satellite";
  return [
    el("h3", {}, t.boxesTitle),
    el("p", { id: "pair-role" }, t.pairRole(pair.role, pair.epoch)),
    l.peer ? el("p", { id: "pair-link", class: l.connected && (l.in_sync || satellite) ? "ok" : "error" }, t.pairLink(l)) : "",
    l.peer && !satellite ? el("p", { id: "pair-files" }, t.pairFiles(l.files_copied, l.files_left)) : "",
    pair.apart_since ? el("p", { id: "pair-apart", class: "error", role: "alert" }, t.pairApart(time(pair.apart_since))) : "",
    pair.apart_decisions ? el("p", { id: "pair-waiting" }, t.pairWaiting(pair.apart_decisions)) : "",
    l.last_contact_ms ? el("p", {}, t.pairContact(time(l.last_contact_ms))) : "",
    satellites.length ? el("h3", {}, t.satellitesTitle) : "",
    satellites.length ? table(["", "", ""], satellites.map((s) => [
      s.node, s.connected ? t.satelliteJoined : t.satelliteApart(time(s.apart_since_ms)), String(s.seq),
    ])) : "",
    escrow.length ? el("h3", {}, t.escrowTitle) : "",
    escrow.length ? table(["", "", t.escrowUnits, t.escrowRecalled], escrow.map((e) => [
      e.satellite, e.kind === "tier" ? t.escrowSeats(e.item) : e.kind === "program" ? t.escrowProgram(e.item) : `${e.scope} ${e.item}`, e.units, e.recalled,
    ])) : "",
    report.length ? el("p", { class: "error", role: "alert" }, t.pairReport(report.length)) : "",
    report.length ? table(["", "", ""], report.map((r) => [r.kind, r.outcome, r.reference])) : "",
  ];
}

async function restFigures() {
  const creators = (state.event && state.event.creators) || [];
  const [drops, devices, sync, seats, summaries, clock, pair] = await Promise.all([
    api.drops().catch(() => ({ drops: [] })),
    api.devices().catch(() => ({ devices: [], print_jobs_pending: 0 })),
    api.syncStatus().catch(() => null),
    api.scholarships().catch(() => ({ programs: [] })),
    Promise.all(creators.map((c) => api.creatorSummary(c.id).catch(() => null))),
    // The box's own clock, and whether it can be right.
    api.health().then((h) => h.clock).catch(() => null),
    api.pairStatus().catch(() => null),
  ]);
  const gib = (b) => `${(b / 2 ** 30).toFixed(1)} GiB`;
  return [
    el("h3", {}, t.drops),
    table(["", "", t.onHand, t.held, t.available], drops.drops.flatMap((d) =>
      d.products.map((p) => [`${d.name} (${d.phase})`, p.variant ? `${p.name} (${p.variant})` : p.name, p.on_hand, p.held, p.available]))),
    el("h3", {}, t.scholarships),
    table(["", t.seatsUsed, t.seatsLeft], seats.programs.map((p) => [p.name, p.used, p.remaining])),
    el("h3", {}, t.perCreator),
    table(["", t.capturesCol, t.ticketsCol, t.salesCol], summaries.filter(Boolean).map((s) =>
      [s.name, `${s.captures.count} · ${gib(s.captures.bytes)}`, `${s.tickets_attributed} (${s.checkins_attributed} ${t.inShort})`,
        money(s.drop_sales_minor + s.ticket_sales_minor, s.currency)])),
    el("h3", {}, t.devices),
    table(["", "", ""], devices.devices.map((d) => [d.name, d.status, d.detail || ""])),
    el("p", { id: "print-queue" }, t.printQueue(devices.print_jobs_pending)),
    (devices.previews_missing || []).length ? el("p", { id: "previews-missing" },
      t.previewsMissing((devices.previews_missing || []).map((m) => t.previewMissing(t.previewKinds[m.kind] || m.what, m.package)).join("; "))) : "",
    ...pairFigures(pair),
    el("h3", {}, t.sync),
    el("p", { id: "sync-state" }, sync && sync.enabled ? t.syncLast(sync.state, sync.last_success_at && timeOfDay(sync.last_success_at, true)) : t.syncOff),
    sync ? el("p", {}, t.syncBacklog(sync.events_pending, sync.captures_pending, gib(sync.capture_bytes_pending))) : "",
    sync && sync.last_error ? el("p", { class: "error" }, t.syncError(sync.last_error, sync.last_error_at && timeOfDay(sync.last_error_at, true))) : "",
    sync && sync.pretix ? el("p", { id: "pretix-state" }, t.pretixState(sync.pretix)) : "",
    sync && sync.pretix && sync.pretix.paused
      ? el("p", { class: "error", role: "alert", id: "pretix-paused" }, t.pretixPaused(sync.pretix.paused, sync.pretix.paused_since && timeOfDay(sync.pretix.paused_since)))
      : sync && sync.pretix && sync.pretix.last_error ? el("p", { class: "error" }, t.pretixError(sync.pretix.last_error, sync.pretix.last_error_at && timeOfDay(sync.pretix.last_error_at, true))) : "",
    sync && sync.pretix && sync.pretix.refusals.length
      ? el("ul", { id: "pretix-refusals" }, ...sync.pretix.refusals.map((r) => el("li", {}, t.pretixRefusal(r))))
      : "",
    sync && sync.disk_free_bytes != null ? el("p", { id: "disk-free" }, t.diskFree(gib(sync.disk_free_bytes))) : "",
    el("p", {}, `${t.boxClock}: `, el("time", { id: "box-clock" }, clock ? clock.now.slice(0, 19).replace("T", " ") + " UTC" : "?"),
      clock && clock.source !== "system" ? ` (${t.clockSetByAdmin})` : ""),
    clock && !clock.plausible ? el("p", { class: "error", role: "alert", id: "clock-wrong" }, t.clockWrong(clock.advice)) : "",
  ];
}

export async function dashboardScreen() {
  const stop = new AbortController();
  screen.leave = () => stop.abort();
  const door = el("div", { id: "dashboard" });
  const rest = el("div", { id: "dashboard-more" });
  show(el("section", {}, el("h2", {}, t.dashboardTitle), door, rest));
  // One request for the door's figures at a time; a verdict arriving
  // meanwhile asks for one more after it, never a queue of them.
  let busy = false, again = false;
  const refreshDoor = async () => {
    if (busy) return void (again = true);
    busy = true;
    try {
      do {
        again = false;
        door.replaceChildren(...doorFigures(await api.stats()));
      } while (again);
    } finally {
      busy = false;
    }
  };
  // Every verdict, from any phone or scanner, refreshes the door's figures;
  // listening starts first, and the figures are read again once it is
  // open, so a verdict between the two is never missed.
  api.scansFeed(stop.signal, (name) => {
    if (name === "scan") refreshDoor().catch(() => {});
  }, () => refreshDoor().catch(() => {})).catch(() => {});
  try {
    await refreshDoor();
  } catch (e) {
    if (e.status === 401) return screen.signIn(t.sessionExpired);
    return door.replaceChildren(errorBox(e));
  }
  const refreshRest = async () => rest.replaceChildren(...(await restFigures()));
  // Left before the first figures came: no timer may outlive the screen
  // (it would call the box with a session that has ended).
  if (stop.signal.aborted) return;
  refreshRest().catch(() => {});
  const timer = setInterval(() => {
    refreshDoor().catch(() => {});
    refreshRest().catch(() => {});
  }, 5000);
  stop.signal.addEventListener("abort", () => clearInterval(timer));
}
