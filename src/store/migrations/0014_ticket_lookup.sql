-- Finding a guest whose phone is dead: by name, order code or email. The
-- email is searched, never shown; order_id (walk-ups) also holds the
-- manifest's or pretix's order code.
ALTER TABLE tickets ADD COLUMN email TEXT;
CREATE INDEX tickets_by_order ON tickets (order_id);
