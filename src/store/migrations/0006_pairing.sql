-- Staff devices: a PIN signs in only from a device a supervisor paired.
-- Pairing codes are one-time and short-lived; only their SHA-256 is kept,
-- as with session tokens and device credentials. Times are Unix ms.

CREATE TABLE paired_devices (
    id                  TEXT    PRIMARY KEY,
    name                TEXT    NOT NULL,
    credential_sha256   TEXT    NOT NULL UNIQUE,
    paired_by           TEXT    NOT NULL,
    paired_at           INTEGER NOT NULL,
    last_sign_in_at     INTEGER,
    revoked_at          INTEGER,
    revoked_by          TEXT
) WITHOUT ROWID;

CREATE TABLE pairing_codes (
    code_sha256         TEXT    PRIMARY KEY,
    created_by          TEXT    NOT NULL,
    created_role        TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    used_at             INTEGER,
    device_id           TEXT
) WITHOUT ROWID;

-- The device a session was signed in on, so revoking the device ends it;
-- NULL for `venuebox token` and upload links.
ALTER TABLE sessions ADD COLUMN device_id TEXT;

-- The session that created an upload: open uploads (and the bytes they
-- reserve) are bounded per session.
ALTER TABLE uploads ADD COLUMN session_sha256 TEXT;
CREATE INDEX uploads_active_by_session ON uploads (session_sha256) WHERE status = 'active';
