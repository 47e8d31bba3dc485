-- Whose promise an open upload is: a staff member (by name, across their
-- sign-ins) or one upload link. Reservations are bounded per owner, so
-- signing in again does not reserve more.
ALTER TABLE uploads ADD COLUMN owner TEXT;
CREATE INDEX uploads_active_by_owner ON uploads (owner) WHERE status = 'active';
