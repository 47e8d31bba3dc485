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
