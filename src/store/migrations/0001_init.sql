-- The first schema: manifests, tickets, the scan log, staff sessions, the
-- audit log and the outbox. Times are Unix milliseconds (UTC).

-- Every manifest ever imported; the newest row is the current one.
CREATE TABLE manifests (
    id            INTEGER PRIMARY KEY,
    event_id      TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    sha256        TEXT    NOT NULL,
    body          BLOB    NOT NULL,
    signature     TEXT    NOT NULL,
    imported_at   INTEGER NOT NULL,
    imported_by   TEXT    NOT NULL
);

-- Tickets the box can look up: from the current manifest (source =
-- 'manifest'); walk-ups minted on the box arrive with the sales issue.
-- Signed tickets absent from this table are still valid at the door.
CREATE TABLE tickets (
    id           TEXT PRIMARY KEY,
    tier_id      TEXT NOT NULL,
    secret       TEXT UNIQUE,
    holder       TEXT,
    status       TEXT NOT NULL CHECK (status IN ('paid', 'unpaid', 'cancelled')),
    valid_from   INTEGER,
    valid_until  INTEGER,
    source       TEXT NOT NULL DEFAULT 'manifest'
) WITHOUT ROWID;

-- Every scan, admitted or rejected. The nonce makes a retried request
-- idempotent; undone_at marks a check-in a supervisor took back.
CREATE TABLE scans (
    id            INTEGER PRIMARY KEY,
    nonce         TEXT    NOT NULL UNIQUE,
    code          TEXT    NOT NULL,
    gate_id       TEXT    NOT NULL,
    direction     TEXT    NOT NULL CHECK (direction IN ('entry', 'exit')),
    verdict       TEXT    NOT NULL CHECK (verdict IN ('admit', 'reject')),
    reason        TEXT,
    ticket_id     TEXT,
    tier_id       TEXT,
    holder        TEXT,
    prior_gate_id TEXT,
    prior_at      INTEGER,
    scanned_at    TEXT,
    recorded_at   INTEGER NOT NULL,
    staff         TEXT    NOT NULL,
    device        TEXT,
    undone_at     INTEGER,
    undone_by     TEXT
);
-- The decision reads a ticket's latest admitted scan on every check-in.
CREATE INDEX scans_admitted_by_ticket ON scans (ticket_id, id) WHERE verdict = 'admit';

-- Bearer tokens by their SHA-256, so a copied database file does not hand
-- out live tokens.
CREATE TABLE sessions (
    token_sha256  TEXT PRIMARY KEY,
    staff         TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- Who changed what on the box (scans are their own record).
CREATE TABLE audit (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    actor    TEXT    NOT NULL,
    role     TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    detail   TEXT    NOT NULL
);

-- What the cloud must learn, in the order it happened. seq is gap-free:
-- it is assigned inside the writing transaction as MAX(seq) + 1.
CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY,
    box_id      TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
