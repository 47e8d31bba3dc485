-- Tickets from pretix (issue 16). An import asks pretix only for the
-- orders changed since the last one, so the box keeps every order it has
-- seen: the manifest is rebuilt from all of them.
CREATE TABLE pretix_orders (
    code      TEXT PRIMARY KEY,
    -- JSON: the order's positions as the manifest lists them.
    positions TEXT NOT NULL,
    modified  TEXT NOT NULL
);

-- Small named values: the import cursor (`modified_since`), the send-back
-- cursor (the last scan id handled), the last outcomes for the status.
CREATE TABLE pretix_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Admitted scans that were undone after they were sent, once pretix was
-- told (or had nothing to annul).
CREATE TABLE pretix_annulled (
    scan_id INTEGER PRIMARY KEY REFERENCES scans (id),
    at      INTEGER NOT NULL
);

-- Scans pretix refused for good (an order deleted there, say): kept for
-- the organiser to look at, never retried.
CREATE TABLE pretix_refused (
    scan_id INTEGER PRIMARY KEY REFERENCES scans (id),
    detail  TEXT NOT NULL,
    at      INTEGER NOT NULL
);
