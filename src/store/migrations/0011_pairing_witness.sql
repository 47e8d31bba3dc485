-- Which code paired a device, and from which address: the supervisor who
-- made the code sees who took it (and can revoke it in one tap). The code
-- id is the start of the code's SHA-256, never the code.
ALTER TABLE paired_devices ADD COLUMN code_id TEXT;
ALTER TABLE paired_devices ADD COLUMN paired_from TEXT;
