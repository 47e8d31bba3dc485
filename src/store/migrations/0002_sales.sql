-- Selling: walk-up tickets, scholarship claims, drops, holds, orders and
-- the inventory ledger. Times are Unix milliseconds (UTC). In stock and
-- ledger rows, drop_id '' is the event's pool of stock not in any drop.

-- Tickets minted on the box: their order and code.
ALTER TABLE tickets ADD COLUMN order_id TEXT;
ALTER TABLE tickets ADD COLUMN code TEXT;
CREATE INDEX tickets_by_tier ON tickets (tier_id, status);

-- Per-box counters for human-readable ids (orders, holds, tickets).
CREATE TABLE counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE orders (
    id                  TEXT PRIMARY KEY,
    nonce               TEXT    NOT NULL UNIQUE,
    kind                TEXT    NOT NULL CHECK (kind IN ('walkup', 'scholarship', 'drop')),
    status              TEXT    NOT NULL CHECK (status IN ('paid', 'voided', 'refunded')),
    created_at          INTEGER NOT NULL,
    staff               TEXT    NOT NULL,
    creator_id          TEXT,
    drop_id             TEXT,
    attendee_ticket_id  TEXT,
    reserve_eligible    INTEGER NOT NULL DEFAULT 0,
    currency            TEXT    NOT NULL,
    total_minor         INTEGER NOT NULL,
    tax_minor           INTEGER NOT NULL,
    tender_kind         TEXT    NOT NULL,
    change_minor        INTEGER NOT NULL,
    receipt             TEXT    NOT NULL,
    closed_at           INTEGER,
    closed_by           TEXT,
    close_reason        TEXT
) WITHOUT ROWID;
CREATE INDEX orders_by_attendee ON orders (drop_id, attendee_ticket_id) WHERE status = 'paid';

-- Units sold per product, for per-attendee limits, reserves and refunds.
CREATE TABLE order_items (
    order_id  TEXT    NOT NULL,
    drop_id   TEXT    NOT NULL,
    sku       TEXT    NOT NULL,
    qty       INTEGER NOT NULL CHECK (qty > 0),
    PRIMARY KEY (order_id, sku)
) WITHOUT ROWID;

CREATE TABLE scholarship_claims (
    id          INTEGER PRIMARY KEY,
    program_id  TEXT    NOT NULL,
    code        TEXT    NOT NULL,
    creator_id  TEXT    NOT NULL,
    funder      TEXT    NOT NULL,
    order_id    TEXT    NOT NULL,
    ticket_id   TEXT    NOT NULL,
    claimed_at  INTEGER NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('active', 'released'))
);
CREATE INDEX claims_by_program ON scholarship_claims (program_id, status);
CREATE INDEX claims_by_code ON scholarship_claims (code, status);

-- Drops as the box knows them: from the manifest or made by an admin.
CREATE TABLE drops (
    id          TEXT PRIMARY KEY,
    spec        TEXT    NOT NULL,
    opens_at    INTEGER NOT NULL,
    closes_at   INTEGER NOT NULL,
    source      TEXT    NOT NULL CHECK (source IN ('manifest', 'box')),
    cycled_at   INTEGER,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Every stock movement. Stock on hand is the sum of delta.
CREATE TABLE inventory_ledger (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    drop_id  TEXT    NOT NULL,
    sku      TEXT    NOT NULL,
    delta    INTEGER NOT NULL,
    reason   TEXT    NOT NULL CHECK (reason IN ('initial', 'restock', 'sale', 'void', 'refund',
                                                'cycle_out', 'cycle_in', 'transfer_out', 'transfer_in')),
    ref      TEXT,
    actor    TEXT    NOT NULL,
    note     TEXT
);
CREATE INDEX ledger_by_product ON inventory_ledger (drop_id, sku);

-- Stock on hand per product, kept equal to the ledger's sum in the same
-- transaction as each ledger row (so a sale does not sum the ledger).
-- eligible_sold counts units sold to reserve holders, for the reserve.
CREATE TABLE stock (
    drop_id        TEXT    NOT NULL,
    sku            TEXT    NOT NULL,
    on_hand        INTEGER NOT NULL,
    eligible_sold  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (drop_id, sku)
) WITHOUT ROWID;

CREATE TABLE holds (
    id                  TEXT PRIMARY KEY,
    nonce               TEXT    NOT NULL UNIQUE,
    drop_id             TEXT    NOT NULL,
    attendee_ticket_id  TEXT,
    reserve_eligible    INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    staff               TEXT    NOT NULL,
    status              TEXT    NOT NULL CHECK (status IN ('active', 'checked_out', 'released', 'expired')),
    order_id            TEXT
) WITHOUT ROWID;
CREATE INDEX holds_active ON holds (drop_id, expires_at) WHERE status = 'active';

CREATE TABLE hold_items (
    hold_id  TEXT    NOT NULL,
    sku      TEXT    NOT NULL,
    qty      INTEGER NOT NULL CHECK (qty > 0),
    PRIMARY KEY (hold_id, sku)
) WITHOUT ROWID;
