-- pretix refuses to annul a check-in more than 15 minutes old (issue 24):
-- an undone check-in it would not annul is kept with what pretix said, so
-- the box never shows as annulled what pretix still counts.
ALTER TABLE pretix_annulled ADD COLUMN refused TEXT;

-- An order waiting for the organiser's approval (pretix) is listed as
-- 'unapproved': refused at every gate. SQLite cannot change a CHECK, so the
-- tickets table is rebuilt with the same columns and index (nothing
-- references it by foreign key).
CREATE TABLE tickets_new (
    id           TEXT PRIMARY KEY,
    tier_id      TEXT NOT NULL,
    secret       TEXT UNIQUE,
    holder       TEXT,
    status       TEXT NOT NULL CHECK (status IN ('paid', 'unpaid', 'unapproved', 'cancelled')),
    valid_from   INTEGER,
    valid_until  INTEGER,
    source       TEXT NOT NULL DEFAULT 'manifest',
    order_id     TEXT,
    code         TEXT
) WITHOUT ROWID;
INSERT INTO tickets_new (id, tier_id, secret, holder, status, valid_from, valid_until, source, order_id, code)
    SELECT id, tier_id, secret, holder, status, valid_from, valid_until, source, order_id, code FROM tickets;
DROP TABLE tickets;
ALTER TABLE tickets_new RENAME TO tickets;
CREATE INDEX tickets_by_tier ON tickets (tier_id, status);

-- Answers to the questions asked at check-in (pretix), given with an
-- admitted scan and sent back with it.
CREATE TABLE scan_answers (
    scan_id INTEGER PRIMARY KEY REFERENCES scans (id),
    -- JSON object: question id → answer, as pretix takes it.
    answers TEXT NOT NULL
);
