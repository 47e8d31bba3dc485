//! Store-level tests: each store file's rules on a temporary database,
//! without HTTP, on a controlled clock (times are arguments). What the HTTP
//! tests show through the API, these pin where it is decided: the scan
//! log, sales and replays, drops and the ledger, captures, the outbox,
//! sync bookkeeping, printing and payouts.

use super::drops::HoldRequest;
use super::sales::{CloseKind, WalkupRequest};
use super::scans::{ScanRequest, Verdict};
use super::{ImportOutcome, Store, StoreError, StoreOptions};
use crate::domain::checkin::{Direction, Reason};
use crate::domain::ids::{DropId, GateId, ScanId, Seq, TierId};
use crate::domain::keys::{sign_detached, signing_key_from_bytes, TrustedKeys};
use crate::domain::manifest::tests::sample;
use crate::domain::money::Tender;
use crate::domain::role::{Actor, Role};
use crate::domain::time::{format_rfc3339, parse_rfc3339, Millis};
use serde_json::json;
use std::sync::Arc;

const MIN: Millis = 60_000;

/// The event's doors: every test's "now".
fn t0() -> Millis {
    parse_rfc3339("2026-11-27T19:30:00Z").unwrap()
}

fn actor(role: Role) -> Actor {
    Actor { name: format!("test-{role}"), role }
}

struct Fixture {
    store: Store,
    _dir: tempfile::TempDir,
}

/// A store on a temporary database with the sample event, a creator with a
/// referral code and a drop that is open at `t0`.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Arc::default(), StoreOptions::default()).unwrap();
    let key = signing_key_from_bytes([7; 32]);
    let mut m = sample(&[&key], 1);
    m["creators"] = json!([{"id": "cr-a", "name": "Alice", "referral_codes": ["ALICE"],
                            "payout": {"ticket_share_bp": 1000, "drop_share_bp": 2000}}]);
    m["drops"] = json!([{"id": "d-now", "name": "Now", "creator": "cr-a",
        "opens_at": format_rfc3339(t0() - MIN), "closes_at": format_rfc3339(t0() + 60 * MIN),
        "products": [{"sku": "TEE", "name": "Tee", "price_minor": 2000, "quantity": 3}]}]);
    let bytes = serde_json::to_vec(&m).unwrap();
    let sig = sign_detached(&key, &bytes);
    let outcome = store
        .import_manifest(bytes, Some(sig), TrustedKeys::default(), actor(Role::Admin), t0())
        .await
        .unwrap();
    assert!(matches!(outcome, ImportOutcome::Imported { .. }), "{outcome:?}");
    Fixture { store, _dir: dir }
}

fn scan(code: &str, gate: &str, nonce: &str, now: Millis) -> ScanRequest {
    ScanRequest {
        code: code.into(),
        gate: GateId(gate.into()),
        direction: Direction::Entry,
        nonce: nonce.into(),
        scanned_at: None,
        staff: "door".into(),
        device: None,
        now,
        confirm_unpaid: false,
        answers: Default::default(),
        ticket: None,
    }
}

fn walkup(tier: &str, nonce: &str) -> WalkupRequest {
    WalkupRequest {
        tier: TierId(tier.into()),
        tender: Some(Tender::Card { reference: "slip-1".into() }),
        referral: Some("ALICE".into()),
        holder: None,
        nonce: nonce.into(),
        staff: actor(Role::Merch),
        now: t0(),
        apart: false,
        satellite: None,
    }
}

async fn outbox_kinds(store: &Store) -> Vec<String> {
    store.outbox_after(Seq(0), 1000).await.unwrap().into_iter().map(|r| r.kind).collect()
}

// --- scans.rs -------------------------------------------------------------

#[tokio::test]
async fn a_ticket_is_admitted_once_and_the_second_scan_names_the_first() {
    let f = fixture().await;
    let first = f.store.record_scan(scan("SECRET-ONE", "main", "n1", t0())).await.unwrap();
    assert_eq!(first.record().verdict, Verdict::Admit);
    let again = f.store.record_scan(scan("SECRET-ONE", "main", "n2", t0() + 1000)).await.unwrap();
    let rec = again.record();
    assert_eq!((rec.verdict, rec.reason), (Verdict::Reject, Some(Reason::AlreadyCheckedIn)));
    assert_eq!(rec.prior.as_ref().map(|p| p.at), Some(t0()));
    let counts = f.store.counts().await.unwrap();
    assert_eq!((counts.admitted, counts.rejected, counts.inside), (1, 1, 1));
}

#[tokio::test]
async fn a_scan_nonce_replayed_gets_the_stored_answer_and_writes_nothing() {
    let f = fixture().await;
    let first = f.store.record_scan(scan("SECRET-ONE", "main", "n1", t0())).await.unwrap();
    let before = outbox_kinds(&f.store).await.len();
    let replay = f.store.record_scan(scan("SECRET-ONE", "main", "n1", t0() + 5000)).await.unwrap();
    assert!(matches!(replay, super::scans::ScanOutcome::Replayed(_)));
    assert_eq!(replay.record().id, first.record().id);
    assert_eq!(replay.record().verdict, Verdict::Admit, "the first answer, not a re-decision");
    assert_eq!(outbox_kinds(&f.store).await.len(), before, "a replay writes no event");
}

#[tokio::test]
async fn an_admission_is_undone_only_inside_the_window_and_then_scans_again() {
    let f = fixture().await;
    let sup = actor(Role::Supervisor);
    let id: ScanId =
        f.store.record_scan(scan("SECRET-ONE", "main", "n1", t0())).await.unwrap().record().id;
    let late = f.store.undo_scan(id, sup.clone(), t0() + 3 * MIN, 2 * MIN).await.unwrap_err();
    assert!(matches!(late, StoreError::Conflict(_)), "{late}");
    let undone = f.store.undo_scan(id, sup.clone(), t0() + MIN, 2 * MIN).await.unwrap();
    assert_eq!(undone.undone_at, Some(t0() + MIN));
    let twice = f.store.undo_scan(id, sup, t0() + MIN, 2 * MIN).await.unwrap_err();
    assert!(matches!(twice, StoreError::Conflict(_)), "{twice}");
    let back = f.store.record_scan(scan("SECRET-ONE", "main", "n2", t0() + MIN)).await.unwrap();
    assert_eq!(back.record().verdict, Verdict::Admit, "undone, the ticket scans again");
    assert!(outbox_kinds(&f.store).await.contains(&"checkin.undone".to_string()));
}

// --- sales.rs -------------------------------------------------------------

#[tokio::test]
async fn walkups_stop_at_the_tier_capacity_and_a_void_gives_the_seat_back() {
    let f = fixture().await;
    // The sample's VIP tier holds 2.
    let a = f.store.sell_walkup(walkup("vip", "w1")).await.unwrap();
    f.store.sell_walkup(walkup("vip", "w2")).await.unwrap();
    let full = f.store.sell_walkup(walkup("vip", "w3")).await.unwrap_err();
    assert!(matches!(full, StoreError::Refused { .. }), "{full}");
    let sup = actor(Role::Supervisor);
    let why = "wrong tier".to_string();
    f.store
        .close_order(a.id.clone(), CloseKind::Void, why.clone(), false, sup.clone(), t0(), false)
        .await
        .unwrap();
    let again = f
        .store
        .close_order(a.id, CloseKind::Refund, why, false, sup, t0(), false)
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::Conflict(_)), "closed once: {again}");
    f.store.sell_walkup(walkup("vip", "w4")).await.expect("the voided seat is free again");
}

#[tokio::test]
async fn an_order_nonce_is_one_request() {
    let f = fixture().await;
    let first = f.store.sell_walkup(walkup("ga", "same")).await.unwrap();
    let replay = f.store.sell_walkup(walkup("ga", "same")).await.unwrap();
    assert_eq!((replay.id, replay.replayed), (first.id, true));
    let other = f.store.sell_walkup(walkup("vip", "same")).await.unwrap_err();
    assert!(matches!(other, StoreError::NonceConflict(_)), "{other}");
    let issued = outbox_kinds(&f.store).await.iter().filter(|k| *k == "order.created").count();
    assert_eq!(issued, 1);
}

// --- drops.rs -------------------------------------------------------------

fn hold(qty: u32, nonce: &str, now: Millis) -> HoldRequest {
    HoldRequest {
        drop: DropId("d-now".into()),
        items: vec![("TEE".into(), qty)],
        attendee_code: None,
        nonce: nonce.into(),
        staff: actor(Role::Merch),
        now,
        ttl_ms: 2 * MIN,
        apart: false,
        satellite: None,
    }
}

async fn available(store: &Store, now: Millis) -> i64 {
    let d = store.drop_detail(DropId("d-now".into()), now).await.unwrap();
    d.products.iter().find(|p| p.sku.as_str() == "TEE").unwrap().available
}

#[tokio::test]
async fn holds_keep_stock_until_they_expire_by_time_and_never_oversell() {
    let f = fixture().await;
    f.store.create_hold(hold(2, "h1", t0())).await.unwrap();
    assert_eq!(available(&f.store, t0()).await, 1);
    let short = f.store.create_hold(hold(2, "h2", t0())).await.unwrap_err();
    assert!(matches!(short, StoreError::Refused { .. }), "{short}");
    // No janitor ran: the hold stops counting when its time is up.
    assert_eq!(available(&f.store, t0() + 3 * MIN).await, 3);
    f.store.create_hold(hold(3, "h3", t0() + 3 * MIN)).await.expect("expired stock is free");
}

/// The clock set back ten minutes a minute after a two-minute hold: the
/// hold keeps its real minute left on the new time (before: it held the
/// stock eleven minutes).
#[tokio::test]
async fn setting_the_clock_back_keeps_holds_to_their_real_time() {
    let f = fixture().await;
    f.store.create_hold(hold(2, "h1", t0())).await.unwrap();
    let back = 10 * MIN;
    let now = t0() + MIN;
    f.store.set_clock_offset(-back, 0, now, actor(Role::Admin), now - back).await.unwrap();
    let new_now = now - back;
    assert_eq!(available(&f.store, new_now).await, 1, "still held");
    assert_eq!(available(&f.store, new_now + MIN + 1).await, 3, "freed a real minute later");
}

#[tokio::test]
async fn the_ledger_explains_every_unit_of_stock() {
    let f = fixture().await;
    let card = Some(Tender::Card { reference: "slip".into() });
    f.store.sell_drop(hold(1, "s1", t0()), card).await.unwrap();
    let (drop, sku) = (DropId("d-now".into()), crate::domain::ids::Sku::from("TEE"));
    f.store
        .restock(drop.clone(), sku, 4, "more arrived".into(), false, actor(Role::Admin), t0())
        .await
        .unwrap();
    let sum: i64 = f
        .store
        .read(|c| {
            Ok(c.query_row("SELECT SUM(delta) FROM inventory_ledger WHERE sku = 'TEE'", [], |r| {
                r.get(0)
            })?)
        })
        .await
        .unwrap();
    let on_hand: i64 = f
        .store
        .read(|c| Ok(c.query_row("SELECT on_hand FROM stock WHERE sku = 'TEE'", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!((sum, on_hand), (3 - 1 + 4, 6));
    assert_eq!(available(&f.store, t0()).await, 6);
}

// --- outbox.rs --------------------------------------------------------------

#[tokio::test]
async fn the_outbox_is_gap_free_even_when_a_change_is_refused() {
    let f = fixture().await;
    f.store.sell_walkup(walkup("vip", "a")).await.unwrap();
    f.store.sell_walkup(walkup("vip", "b")).await.unwrap();
    f.store.sell_walkup(walkup("vip", "c")).await.unwrap_err(); // sold out: rolled back
    f.store.record_scan(scan("SECRET-ONE", "main", "n", t0())).await.unwrap();
    let seqs: Vec<i64> =
        f.store.outbox_after(Seq(0), 1000).await.unwrap().iter().map(|r| r.seq.0).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    // Every row reads back as its typed event.
    for r in f.store.outbox_after(Seq(0), 1000).await.unwrap() {
        let typed = crate::domain::events::Event::from_parts(&r.kind, &r.payload).unwrap();
        assert!(typed.is_some(), "{} is a kind this version writes", r.kind);
    }
}

// --- sync.rs ----------------------------------------------------------------

#[tokio::test]
async fn a_segment_is_planned_once_and_acknowledged_only_as_planned() {
    use super::sync::PendingSegment;
    let f = fixture().await;
    f.store.record_scan(scan("SECRET-ONE", "main", "n", t0())).await.unwrap();
    let last = f.store.sync_backlog().await.unwrap().last_seq;
    let seg = PendingSegment { first: 1, last, key: "events/x.ndjson.zst".into() };
    assert_eq!(f.store.sync_plan_segment(0, seg.clone()).await.unwrap(), Some(seg.clone()));
    // A second planner finds the first one's segment, not its own.
    let other = PendingSegment { first: 1, last: 1, key: "events/y.ndjson.zst".into() };
    assert_eq!(f.store.sync_plan_segment(0, other.clone()).await.unwrap(), Some(seg.clone()));
    assert!(!f.store.sync_ack_segment(other, t0()).await.unwrap(), "not the pending one");
    assert!(f.store.sync_ack_segment(seg, t0()).await.unwrap());
    let backlog = f.store.sync_backlog().await.unwrap();
    assert_eq!((backlog.cursor, backlog.events_pending), (last, 0));
    let events = f.store.sync_stream("events").await.unwrap();
    assert_eq!(events.last_success_at, Some(t0()));
}

// --- printing.rs ------------------------------------------------------------

#[tokio::test]
async fn a_sale_queues_its_receipt_and_a_late_printer_skips_stale_ones() {
    let f = fixture().await;
    let order = f.store.sell_walkup(walkup("ga", "p1")).await.unwrap();
    let station = super::printing::DEFAULT_STATION.to_string();
    let job = f.store.next_print_job(station.clone(), t0()).await.unwrap().expect("queued");
    assert_eq!(job.receipt.as_ref().map(|r| r.order_id.clone()), Some(order.id.to_string()));
    f.store.print_job_done(job.id, "printer-1".into(), t0()).await.unwrap();
    assert!(f.store.next_print_job(station.clone(), t0()).await.unwrap().is_none(), "printed once");
    f.store.sell_walkup(walkup("ga", "p2")).await.unwrap();
    let later = f.store.next_print_job(station, t0() + 16 * MIN).await.unwrap();
    assert!(later.is_none(), "a receipt 16 minutes old is not printed on its own");
}

// --- payouts.rs -------------------------------------------------------------

#[tokio::test]
async fn statements_count_referred_sales_and_leave_out_voided_ones() {
    let f = fixture().await;
    let kept = f.store.sell_walkup(walkup("ga", "r1")).await.unwrap();
    let voided = f.store.sell_walkup(walkup("ga", "r2")).await.unwrap();
    let sup = actor(Role::Supervisor);
    f.store
        .close_order(voided.id, CloseKind::Void, "mistake".into(), false, sup, t0(), false)
        .await
        .unwrap();
    let statements = f.store.payout_statements(t0()).await.unwrap();
    let alice = statements.iter().find(|s| s.creator == "cr-a").unwrap();
    let t = &alice.totals.referral_tickets;
    assert_eq!((t.orders, t.gross_minor, t.refunded_minor), (2, 5000, 2500));
    assert_eq!(t.net_minor(), kept.receipt.total_minor - kept.receipt.tax_minor);
    assert_eq!(alice.totals.payout_minor, t.net_minor() / 10, "10 % of the referred net");
}

// --- captures.rs ------------------------------------------------------------

fn new_upload(id: &str, length: u64, session: &str) -> super::captures::NewUpload {
    use crate::domain::capture::CaptureMeta;
    super::captures::NewUpload {
        id: id.into(),
        length: Some(length),
        metadata: String::new(),
        meta: CaptureMeta {
            filename: Some(format!("{id}.jpg")),
            claimed_type: Some("image/jpeg".into()),
            creator: "cr-a".into(),
            uploader: Some("crew".into()),
            consent: true,
            captured_at: None,
        },
        created_by: "test-capture".into(),
        session_sha256: session.into(),
        owner: format!("staff:{session}"),
        now: t0(),
        expires_at: t0() + 60 * MIN,
    }
}

#[tokio::test]
async fn the_same_bytes_twice_are_one_capture_and_a_reservation_is_capped_per_session() {
    use crate::domain::capture::MediaType;
    use crate::domain::capture::Probe;
    let f = fixture().await;
    let probe = || Probe {
        media: MediaType::Jpeg,
        width: Some(4000),
        height: Some(3000),
        captured_at: None,
    };
    let sha = "ab".repeat(32);
    for (id, dup) in [("u1", false), ("u2", true)] {
        f.store.create_upload(new_upload(id, 3_000_000, "s1")).await.unwrap();
        let (view, duplicate) = f
            .store
            .complete_upload(id.into(), sha.clone(), 3_000_000, probe(), t0())
            .await
            .unwrap();
        assert_eq!((view.sha256.as_str(), duplicate), (sha.as_str(), dup));
    }
    let summary = f.store.creator_summary("cr-a".into()).await.unwrap();
    assert_eq!(summary.captures.count, 1, "one capture, however often it was sent");
    // Open uploads promise bytes; one owner counts at most its cap, and a
    // promise that saw no bytes lately counts nothing.
    f.store.create_upload(new_upload("u3", 10 << 30, "s2")).await.unwrap();
    let quota = f.store.capture_quota("staff:s2".into(), 1 << 30, t0() - 1).await.unwrap();
    assert_eq!((quota.received, quota.reserved, quota.owner_open), (3_000_000, 1 << 30, 1));
    let idle = f.store.capture_quota("staff:s2".into(), 1 << 30, t0()).await.unwrap();
    assert_eq!((idle.reserved, idle.owner_reserved, idle.owner_open), (0, 0, 1));
    let sup = actor(Role::Supervisor);
    f.store.hide_capture(sha.clone(), "asked".into(), true, sup.clone(), t0()).await.unwrap();
    let again = f.store.hide_capture(sha, "asked".into(), true, sup, t0()).await.unwrap_err();
    assert!(matches!(again, StoreError::Conflict(_)), "{again}");
}

// --- escrow.rs ------------------------------------------------------------

async fn on_hand(store: &Store) -> i64 {
    store.ledger("d-now".into()).await.unwrap().0["TEE"]
}

#[tokio::test]
async fn a_loan_leaves_the_stock_at_once_and_comes_home_only_once_the_satellite_has_seen_it_taken_back(
) {
    let f = fixture().await;
    let spec = serde_json::from_value(json!({"id": "d-now", "name": "Now", "creator": "cr-a",
        "opens_at": format_rfc3339(t0() - MIN), "closes_at": format_rfc3339(t0() + 60 * MIN),
        "products": [{"sku": "TEE", "name": "Tee", "price_minor": 2000, "quantity": 3}],
        "escrow": {"share_percent": 100, "min": 1, "max": 10}}))
    .unwrap();
    f.store.update_drop(spec, actor(Role::Admin), t0()).await.unwrap();
    let card = || Some(Tender::Card { reference: "slip".into() });
    // Three tees, one satellite: it holds an even split at most, one.
    let step = f.store.keep_escrow("node-s".into(), false, t0()).await.unwrap();
    assert!(!step.reclaimed && !step.recalled);
    assert_eq!(on_hand(&f.store).await, 2, "the lent tee left the stock at once");
    let lent = f.store.escrow().await.unwrap();
    assert_eq!((lent[0].units, lent[0].recalled), (1, 0));
    // The main door sells the other two: the last unit is not lent any
    // more, but it is not the primary's to sell until the satellite has
    // seen it taken back.
    f.store.sell_drop(hold(1, "s1", t0()), card()).await.unwrap();
    f.store.sell_drop(hold(1, "s2", t0()), card()).await.unwrap();
    let step = f.store.keep_escrow("node-s".into(), false, t0()).await.unwrap();
    assert!(step.reclaimed && step.recalled);
    assert_eq!(on_hand(&f.store).await, 0);
    let refused = f.store.sell_drop(hold(1, "s3", t0()), card()).await.unwrap_err();
    assert!(matches!(refused, StoreError::Refused { .. }), "{refused:?}");
    let step = f.store.keep_escrow("node-s".into(), false, t0()).await.unwrap();
    assert!(!step.reclaimed && step.recalled, "nothing comes home unacknowledged");
    assert_eq!(on_hand(&f.store).await, 0);
    // Acknowledged: home, and sold at the main door.
    let step = f.store.keep_escrow("node-s".into(), true, t0()).await.unwrap();
    assert!(!step.recalled);
    assert_eq!(on_hand(&f.store).await, 1);
    f.store.sell_drop(hold(1, "s4", t0()), card()).await.unwrap();
    let (stock, ledger) = f.store.ledger("d-now".into()).await.unwrap();
    let sum: i64 = ledger.iter().filter(|r| r.sku == "TEE").map(|r| r.delta).sum();
    assert_eq!((stock["TEE"], sum), (0, 0), "the ledger is the stock");
    let reasons: Vec<&str> = ledger.iter().map(|r| r.reason.as_str()).collect();
    assert!(reasons.contains(&"transfer_out") && reasons.contains(&"transfer_in"), "{reasons:?}");
}
