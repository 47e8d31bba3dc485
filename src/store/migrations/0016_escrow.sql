-- Escrow (ARCHITECTURE.md, "Satellites: escrow"): units of a drop's
-- product, seats of a tier or of a scholarship program the primary lends
-- a satellite to sell while it is cut off. Replicated like the stock it comes out of: a satellite
-- knows its own escrow from its copy.
--   units:     what the satellite may sell apart;
--   recalled: taken back by the primary, and not yet back in its stock:
--              the satellite has not yet acknowledged the change, so it
--              might still sell them apart.
-- A product's lent units left its stock with a `transfer_out` ledger row
-- and come back with `transfer_in`; a tier's seats, and a program's
-- (which are seats of its tier), count against the tier's capacity while
-- lent, a program's also against its seats.
CREATE TABLE escrow (
    satellite  TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('sku', 'tier', 'program')),
    scope      TEXT    NOT NULL,   -- the drop (kind sku), the program's tier (kind program), '' (kind tier)
    item       TEXT    NOT NULL,   -- the SKU, the tier, or the program
    units      INTEGER NOT NULL DEFAULT 0 CHECK (units >= 0),
    recalled  INTEGER NOT NULL DEFAULT 0 CHECK (recalled >= 0),
    PRIMARY KEY (satellite, kind, scope, item)
) WITHOUT ROWID;

-- A cart a satellite held while cut off comes out of its escrow, not out
-- of the stock it shares with the primary.
ALTER TABLE holds ADD COLUMN escrow_of TEXT;

-- On a satellite (each box its own: `repl_` tables are not replicated):
-- the receipts its printers printed from its copy (its sales, forwarded or
-- apart, print at its own station), until the primary's log shows them
-- done. A job is known by its id and time (ids of jobs made apart are
-- the satellite's own, and may meet the primary's after a snapshot).
CREATE TABLE repl_printed (
    job_id      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    printer     TEXT    NOT NULL,
    printed_at  INTEGER NOT NULL,
    PRIMARY KEY (job_id, created_at)
) WITHOUT ROWID;
