-- The standby (ARCHITECTURE.md, "Two boxes"). None of these tables is
-- itself replicated: each box keeps its own role, epoch and log position.

-- One row per write batch while a standby is enrolled: the batch's
-- changeset, in commit order, under the epoch it was written in.
CREATE TABLE repl_log (
    seq        INTEGER PRIMARY KEY,
    epoch      INTEGER NOT NULL,
    changeset  BLOB    NOT NULL
);

-- role (primary | standby), epoch, capture (on | off), applied (the last
-- seq a standby applied), epoch_start (the seq a promotion started at).
CREATE TABLE repl_state (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
) WITHOUT ROWID;

-- What an old primary took alone after a newer primary was promoted
-- (replicated like any event data, so both boxes show it): each row one
-- check-in or sale, and what became of it at the merge.
CREATE TABLE takeover_report (
    id         INTEGER PRIMARY KEY,
    found_at   INTEGER NOT NULL,
    old_epoch  INTEGER NOT NULL,
    kind       TEXT    NOT NULL,   -- checkin | order
    ref        TEXT    NOT NULL,   -- the nonce or order id on the old primary
    outcome    TEXT    NOT NULL,   -- merged | double_admission | conflict
    detail     TEXT    NOT NULL    -- JSON: the old primary's record (and the new one's)
);
