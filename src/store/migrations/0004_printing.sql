-- Receipt printing: a job per receipt, written with its order, so a
-- receipt is never lost to a printer that is out of paper or unplugged.
CREATE TABLE print_jobs (
    id          INTEGER PRIMARY KEY,
    order_id    TEXT,
    kind        TEXT    NOT NULL CHECK (kind IN ('receipt', 'reprint', 'test')),
    station     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('pending', 'done', 'skipped')),
    printed_at  INTEGER,
    printer     TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT
);
CREATE INDEX print_jobs_pending ON print_jobs (station, id) WHERE status = 'pending';
