-- Pairing slips: the print queue learns a job kind that is not a receipt,
-- with what to print in `payload` (JSON). SQLite cannot change a CHECK
-- constraint in place, so the table is rebuilt with its rows and index.

CREATE TABLE print_jobs_next (
    id          INTEGER PRIMARY KEY,
    order_id    TEXT,
    kind        TEXT    NOT NULL CHECK (kind IN ('receipt', 'reprint', 'test', 'pairing')),
    station     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('pending', 'done', 'skipped')),
    printed_at  INTEGER,
    printer     TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    payload     TEXT
);
INSERT INTO print_jobs_next (id, order_id, kind, station, created_at, status, printed_at, printer, attempts, last_error)
    SELECT id, order_id, kind, station, created_at, status, printed_at, printer, attempts, last_error FROM print_jobs;
DROP TABLE print_jobs;
ALTER TABLE print_jobs_next RENAME TO print_jobs;
CREATE INDEX print_jobs_pending ON print_jobs (station, id) WHERE status = 'pending';
