-- Live proof captures: tus uploads in progress, finished captures by
-- SHA-256, and which uploads brought which capture. Times are Unix ms.

-- Upload links: a session bound to one creator, for a creator's crew.
ALTER TABLE sessions ADD COLUMN creator_scope TEXT;

CREATE TABLE uploads (
    id                  TEXT PRIMARY KEY,
    length              INTEGER,            -- NULL while the length is deferred
    offset              INTEGER NOT NULL DEFAULT 0,   -- bytes fsynced to the part file
    metadata            TEXT    NOT NULL,   -- the Upload-Metadata header, as sent
    filename            TEXT,
    claimed_type        TEXT,
    creator_id          TEXT    NOT NULL,
    uploader            TEXT,
    consent             INTEGER NOT NULL,
    client_captured_at  INTEGER,
    created_by          TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    status              TEXT    NOT NULL CHECK (status IN ('active', 'complete', 'refused', 'expired', 'terminated')),
    sha256              TEXT,
    error               TEXT
) WITHOUT ROWID;
CREATE INDEX uploads_active ON uploads (expires_at) WHERE status = 'active';

CREATE TABLE captures (
    id                  INTEGER PRIMARY KEY,
    sha256              TEXT    NOT NULL UNIQUE,
    bytes               INTEGER NOT NULL,
    media_type          TEXT    NOT NULL,
    width               INTEGER,
    height              INTEGER,
    captured_at         INTEGER NOT NULL,
    captured_at_source  TEXT    NOT NULL CHECK (captured_at_source IN ('file', 'client', 'upload')),
    creator_id          TEXT    NOT NULL,
    uploader            TEXT,
    consent             INTEGER NOT NULL,
    first_upload        TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    hidden_at           INTEGER,
    hidden_by           TEXT,
    hidden_reason       TEXT,
    thumbnail           TEXT    NOT NULL CHECK (thumbnail IN ('pending', 'ready', 'none', 'failed'))
);
CREATE INDEX captures_by_creator ON captures (creator_id, id);
CREATE INDEX captures_thumbnail_pending ON captures (id) WHERE thumbnail = 'pending';

-- Every finished upload, including those whose bytes were already stored.
CREATE TABLE capture_uploads (
    upload_id   TEXT PRIMARY KEY,
    sha256      TEXT    NOT NULL,
    creator_id  TEXT    NOT NULL,
    uploader    TEXT,
    consent     INTEGER NOT NULL,
    at          INTEGER NOT NULL
) WITHOUT ROWID;
