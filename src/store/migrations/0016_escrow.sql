-- Escrow (ARCHITECTURE.md, "Satellites: escrow"): units of a drop's
-- product, or seats of a tier, the primary lends a satellite to sell while
-- it is cut off. Replicated like the stock it comes out of: a satellite
-- knows its own escrow from its copy.
--   units:     what the satellite may sell apart;
--   recalled: taken back by the primary, and not yet back in its stock:
--              the satellite has not yet acknowledged the change, so it
--              might still sell them apart.
-- A product's lent units left its stock with a `transfer_out` ledger row
-- and come back with `transfer_in`; a tier's seats count against its
-- capacity while lent.
CREATE TABLE escrow (
    satellite  TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('sku', 'tier')),
    scope      TEXT    NOT NULL,   -- the drop (kind sku), '' (kind tier)
    item       TEXT    NOT NULL,   -- the SKU, or the tier
    units      INTEGER NOT NULL DEFAULT 0 CHECK (units >= 0),
    recalled  INTEGER NOT NULL DEFAULT 0 CHECK (recalled >= 0),
    PRIMARY KEY (satellite, kind, scope, item)
) WITHOUT ROWID;

-- A cart a satellite held while cut off comes out of its escrow, not out
-- of the stock it shares with the primary.
ALTER TABLE holds ADD COLUMN escrow_of TEXT;
