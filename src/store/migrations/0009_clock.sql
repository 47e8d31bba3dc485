-- The clock check (is the box's time before the newest thing it
-- recorded?) reads MAX(created_at) of the outbox on every /healthz: an
-- index makes that one lookup instead of a scan.
CREATE INDEX outbox_created_at ON outbox (created_at);
