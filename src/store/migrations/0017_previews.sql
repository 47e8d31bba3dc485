-- Previews of every capture type (ARCHITECTURE.md, "Previews"): a video's
-- duration, read with its poster frame.
ALTER TABLE captures ADD COLUMN duration_ms INTEGER;
