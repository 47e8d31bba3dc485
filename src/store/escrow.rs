//! Escrow (ARCHITECTURE.md, "Satellites: escrow"): the units of a drop's
//! products and the seats of a tier the primary lends each satellite, so
//! that a satellite cut off from it sells only what nobody else can.
//!
//! On the primary the keeper (`keep_escrow`, run by the satellite's link)
//! sizes each loan by the manifest's rule: a grant moves units out of the
//! stock (`transfer_out`) at once; a reclaim takes them off the loan at
//! once but puts them back (`transfer_in`) only after the satellite has
//! acknowledged the change, because until then it might sell them apart.
//! On a satellite, apart, a sale takes units off its own loan (`take`).
//! The merge (`takeover.rs`) takes the satellite's apart sales off the
//! loan on the primary and moves the rest towards home.

use super::drops::{move_stock, pool_free};
use super::{Store, StoreError, WriteCtx};
use crate::domain::escrow::{adjust, Adjust, EscrowRule};
use crate::domain::manifest::{DropSpec, EventSnapshot};
use crate::domain::time::Millis;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// What a loan is of: a drop's product, or a tier's seats.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Item {
    /// `sku` or `tier`.
    pub kind: &'static str,
    /// The drop of a product; empty for a tier.
    pub scope: String,
    /// The SKU, or the tier.
    pub item: String,
}

impl Item {
    pub fn sku(drop: &str, sku: &str) -> Item {
        Item { kind: "sku", scope: drop.into(), item: sku.into() }
    }
    pub fn tier(tier: &str) -> Item {
        Item { kind: "tier", scope: String::new(), item: tier.into() }
    }
    /// Seats of a scholarship program (of `tier`).
    pub fn program(tier: &str, program: &str) -> Item {
        Item { kind: "program", scope: tier.into(), item: program.into() }
    }
}

/// Seats of a tier out on loan, to every satellite: walk-up seats and
/// scholarship seats of its programs.
pub(crate) fn lent_on_tier(conn: &Connection, tier: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(units + recalled), 0) FROM escrow
         WHERE (kind = 'tier' AND item = ?1) OR (kind = 'program' AND scope = ?1)",
    )?
    .query_row([tier], |r| r.get(0))
}

/// One loan, as the dashboard shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct EscrowLine {
    pub satellite: String,
    /// `sku` (a drop's product) or `tier` (walk-up seats).
    pub kind: String,
    /// The drop, for a product.
    pub scope: String,
    pub item: String,
    /// What the satellite may sell while apart.
    pub units: i64,
    /// Taken back, home once the satellite has acknowledged it.
    pub recalled: i64,
}

/// (units, recalled) of one satellite's loan.
pub(crate) fn loan(conn: &Connection, node: &str, it: &Item) -> rusqlite::Result<(i64, i64)> {
    Ok(conn
        .prepare_cached(
            "SELECT units, recalled FROM escrow WHERE satellite = ?1 AND kind = ?2 AND scope = ?3 AND item = ?4",
        )?
        .query_row(params![node, it.kind, it.scope, it.item], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, 0)))
}

fn set_loan(
    conn: &Connection,
    node: &str,
    it: &Item,
    units: i64,
    recalled: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO escrow (satellite, kind, scope, item, units, recalled) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (satellite, kind, scope, item) DO UPDATE SET units = excluded.units, recalled = excluded.recalled",
    )?
    .execute(params![node, it.kind, it.scope, it.item, units, recalled])?;
    Ok(())
}

/// Units of an item out on loan, to every satellite (recalled included).
pub(crate) fn lent(conn: &Connection, it: &Item) -> rusqlite::Result<(i64, usize)> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(units + recalled), 0), COUNT(*) FROM escrow
         WHERE kind = ?1 AND scope = ?2 AND item = ?3 AND units + recalled > 0",
    )?
    .query_row(params![it.kind, it.scope, it.item], |r| {
        Ok((r.get(0)?, r.get::<_, i64>(1)? as usize))
    })
}

/// On a satellite deciding a sale apart: its node name (its loans are
/// under it), after marking it apart (its sales are reported at the next
/// link). Refused while the primary has not merged what it reported last
/// time: its copy does not show those sales taken off its loans yet.
pub(crate) fn apart_node(ctx: &WriteCtx<'_>, now: Millis) -> Result<String, StoreError> {
    use crate::domain::error_code::ErrorCode;
    if super::replica::state_of(ctx.conn, "apart_report")?.is_some() {
        return Err(StoreError::refused(
            ErrorCode::PrimaryUnreachable,
            "this entrance is still handing the main box what it sold while apart: sales here resume once the main box has merged them (or sell at the main entrance)",
        ));
    }
    let node = super::replica::state_of(ctx.conn, "node")?.ok_or_else(|| {
        StoreError::Internal("this satellite has no node name: join it again".into())
    })?;
    super::replica::mark_apart(ctx.conn, now)?;
    Ok(node)
}

/// On a satellite apart: takes `qty` off its own loan, or refuses with
/// `short` (given what it has left).
pub(crate) fn take(
    conn: &Connection,
    node: &str,
    it: &Item,
    qty: i64,
    short: impl FnOnce(i64) -> StoreError,
) -> Result<(), StoreError> {
    let (units, recalled) = loan(conn, node, it)?;
    if units < qty {
        return Err(short(units));
    }
    Ok(set_loan(conn, node, it, units - qty, recalled)?)
}

/// Adds `qty` to a satellite's loan (a refund it made apart returns there).
pub(crate) fn give(conn: &Connection, node: &str, it: &Item, qty: i64) -> rusqlite::Result<()> {
    let (units, recalled) = loan(conn, node, it)?;
    set_loan(conn, node, it, units + qty, recalled)
}

/// On the primary, merging a satellite's sale made apart: off its loan,
/// first what it still had, then what was on its way back (it may have
/// sold those before it learnt they were taken back). `Err` when the loan
/// cannot cover it: the satellite sold what it was never lent.
pub(crate) fn take_merged(
    conn: &Connection,
    node: &str,
    it: &Item,
    qty: i64,
) -> Result<(), StoreError> {
    let (units, recalled) = loan(conn, node, it)?;
    if units + recalled < qty {
        return Err(StoreError::Internal(format!(
            "{node} sold {qty} of {} {} apart but was lent {}",
            it.scope,
            it.item,
            units + recalled
        )));
    }
    let from_units = qty.min(units);
    set_loan(conn, node, it, units - from_units, recalled - (qty - from_units))?;
    Ok(())
}

/// After a satellite's apart sales are merged: what it still holds is
/// taken back (home once it acknowledges); the keeper lends again.
pub(crate) fn recall(conn: &Connection, node: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE escrow SET recalled = recalled + units, units = 0 WHERE satellite = ?1 AND units > 0",
    )?
    .execute([node])?;
    Ok(())
}

/// Units of a product a satellite holds in carts it made apart.
pub(crate) fn held_apart(
    conn: &Connection,
    node: &str,
    drop: &str,
    sku: &str,
    now: Millis,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(hi.qty), 0) FROM holds h JOIN hold_items hi ON hi.hold_id = h.id
         WHERE h.drop_id = ?1 AND h.escrow_of = ?2 AND h.status = 'active' AND h.expires_at > ?3 AND hi.sku = ?4",
    )?
    .query_row(params![drop, node, now, sku], |r| r.get(0))
}

/// Each item with a rule, what is left of it everywhere (loans included)
/// and what of that is in the primary's hands to lend now.
struct Lendable {
    item: Item,
    rule: Option<EscrowRule>,
    /// Unsold everywhere: free stock here plus every loan.
    left: i64,
    /// What a grant may take now.
    free: i64,
}

fn lendables(
    conn: &Connection,
    ev: &EventSnapshot,
    node: &str,
    now: Millis,
) -> Result<Vec<Lendable>, StoreError> {
    let mut out = Vec::new();
    for t in &ev.manifest.tiers {
        let it = Item::tier(t.id.as_str());
        let sold = super::sales::tier_sold(conn, &t.id)? as i64;
        let (lent_all, _) = lent(conn, &it)?;
        // Seats lent as scholarship seats are not the tier's to lend.
        let programs = lent_on_tier(conn, t.id.as_str())? - lent_all;
        let left = (t.capacity as i64 - sold - programs).max(0);
        out.push(Lendable { item: it, rule: t.escrow, left, free: (left - lent_all).max(0) });
    }
    for p in &ev.manifest.scholarships {
        let Some(t) = ev.tier(&p.tier) else { continue };
        let it = Item::program(p.tier.as_str(), p.id.as_str());
        let used: i64 = conn
            .prepare_cached("SELECT COUNT(*) FROM scholarship_claims WHERE program_id = ?1 AND status = 'active'")?
            .query_row([p.id.as_str()], |r| r.get(0))?;
        let (lent_all, _) = lent(conn, &it)?;
        let sold = super::sales::tier_sold(conn, &p.tier)? as i64;
        let tier_free = t.capacity as i64 - sold - lent_on_tier(conn, p.tier.as_str())?;
        let left = (p.seats as i64 - used).min(tier_free + lent_all).max(0);
        let free = (p.seats as i64 - used - lent_all).min(tier_free).max(0);
        out.push(Lendable { item: it, rule: p.escrow, left, free });
    }
    let drops: Vec<(String, String, Millis, Option<Millis>)> = conn
        .prepare_cached("SELECT id, spec, closes_at, cycled_at FROM drops ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    for (id, spec, closes, cycled) in drops {
        let spec: DropSpec = serde_json::from_str(&spec)
            .map_err(|e| StoreError::Internal(format!("drop {id}: {e}")))?;
        let open = now < closes && cycled.is_none();
        for p in &spec.products {
            let it = Item::sku(&id, p.sku.as_str());
            let free = pool_free(conn, &id, p.sku.as_str(), now)?;
            let (lent_all, _) = lent(conn, &it)?;
            let rule = spec.escrow.filter(|_| open);
            out.push(Lendable { item: it, rule, left: free + lent_all, free });
        }
    }
    // Loans of what has no rule any more (a drop edited or gone) come back.
    let rows: Vec<(String, String, String)> = conn
        .prepare_cached("SELECT kind, scope, item FROM escrow WHERE satellite = ?1 AND units > 0")?
        .query_map([node], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (kind, scope, item) in rows {
        let it = match kind.as_str() {
            "tier" => Item::tier(&item),
            "program" => Item::program(&scope, &item),
            _ => Item::sku(&scope, &item),
        };
        if !out.iter().any(|l| l.item == it) {
            out.push(Lendable { item: it, rule: None, left: 0, free: 0 });
        }
    }
    Ok(out)
}

/// The keeper's steps for one satellite: (item, step), none when every
/// loan is at its rule's target.
fn plan(
    conn: &Connection,
    ev: &EventSnapshot,
    node: &str,
    now: Millis,
) -> Result<Vec<(Lendable, Adjust)>, StoreError> {
    let mut steps = Vec::new();
    for l in lendables(conn, ev, node, now)? {
        let (units, recalled) = loan(conn, node, &l.item)?;
        // Satellites holding a loan of it, this one counted once.
        let (_, holders) = lent(conn, &l.item)?;
        let holders = holders + usize::from(units + recalled == 0);
        let target = l.rule.map_or(0, |r| r.target(l.left, holders));
        match adjust(units, target) {
            Some(Adjust::Grant(_)) if recalled == 0 && l.free == 0 => {}
            Some(step) => steps.push((l, step)),
            None => {}
        }
    }
    Ok(steps)
}

/// What one run of the keeper did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeeperStep {
    /// Units were taken back: home once the satellite acknowledges a
    /// position at or after this run's commit.
    pub reclaimed: bool,
    /// Units are on their way back (from this run or an earlier one).
    pub recalled: bool,
}

fn apply_step(
    ctx: &WriteCtx<'_>,
    node: &str,
    l: &Lendable,
    step: Adjust,
    now: Millis,
) -> Result<bool, StoreError> {
    let (units, recalled) = loan(ctx.conn, node, &l.item)?;
    match step {
        Adjust::Grant(n) => {
            // Units on their way back are lent again first: no ledger rows.
            let again = n.min(recalled);
            let fresh = (n - again).min(l.free);
            if again + fresh == 0 {
                return Ok(false);
            }
            set_loan(ctx.conn, node, &l.item, units + again + fresh, recalled - again)?;
            if fresh > 0 && l.item.kind == "sku" {
                move_stock(
                    ctx,
                    &l.item.scope,
                    &l.item.item,
                    -fresh,
                    "transfer_out",
                    Some(node),
                    "escrow",
                    None,
                    now,
                )?;
            }
            Ok(false)
        }
        Adjust::Reclaim(n) => {
            set_loan(ctx.conn, node, &l.item, units - n, recalled + n)?;
            Ok(true)
        }
    }
}

/// Units taken back that the satellite has acknowledged: home.
pub(crate) fn bring_home(ctx: &WriteCtx<'_>, node: &str, now: Millis) -> Result<(), StoreError> {
    let rows: Vec<(String, String, String, i64)> = ctx
        .conn
        .prepare_cached(
            "SELECT kind, scope, item, recalled FROM escrow WHERE satellite = ?1 AND recalled > 0",
        )?
        .query_map([node], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    for (kind, scope, item, n) in rows {
        if kind == "sku" {
            move_stock(ctx, &scope, &item, n, "transfer_in", Some(node), "escrow", None, now)?;
        }
        ctx.conn
            .prepare_cached("UPDATE escrow SET recalled = 0 WHERE satellite = ?1 AND kind = ?2 AND scope = ?3 AND item = ?4")?
            .execute(params![node, kind, scope, item])?;
    }
    Ok(())
}

fn any_recalled(conn: &Connection, node: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM escrow WHERE satellite = ?1 AND recalled > 0)",
    )?
    .query_row([node], |r| r.get(0))
}

impl Store {
    /// On the primary, for a satellite on its link: lends and takes back
    /// units by the rules; with `home`, units taken back come home (the
    /// caller knows the satellite has acknowledged them). Writes only when
    /// something changes.
    pub async fn keep_escrow(
        &self,
        node: String,
        home: bool,
        now: Millis,
    ) -> Result<KeeperStep, StoreError> {
        let Some(ev) = self.event() else { return Ok(KeeperStep::default()) };
        let (busy, recalled) = {
            let (ev, node) = (ev.clone(), node.clone());
            self.read(move |c| Ok((!plan(c, &ev, &node, now)?.is_empty(), any_recalled(c, &node)?)))
                .await?
        };
        if !(busy || home && recalled) {
            return Ok(KeeperStep { reclaimed: false, recalled });
        }
        self.write(move |ctx| {
            if home {
                bring_home(ctx, &node, now)?;
            }
            let mut reclaimed = false;
            for (l, step) in plan(ctx.conn, &ev, &node, now)? {
                reclaimed |= apply_step(ctx, &node, &l, step, now)?;
            }
            Ok(KeeperStep { reclaimed, recalled: any_recalled(ctx.conn, &node)? })
        })
        .await
    }

    /// Every loan, for the dashboard.
    pub async fn escrow(&self) -> Result<Vec<EscrowLine>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT satellite, kind, scope, item, units, recalled FROM escrow
                 WHERE units + recalled > 0 ORDER BY satellite, kind, scope, item",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(EscrowLine {
                        satellite: r.get(0)?,
                        kind: r.get(1)?,
                        scope: r.get(2)?,
                        item: r.get(3)?,
                        units: r.get(4)?,
                        recalled: r.get(5)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}
