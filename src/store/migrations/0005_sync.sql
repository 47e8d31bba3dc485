-- Cloud sync. One row per stream ('events'): the cursor is the last seq
-- the bucket acknowledged; a pending segment is written here before it is
-- sent, so a retry after a crash sends the same key with the same bytes.
CREATE TABLE sync_streams (
    stream          TEXT    PRIMARY KEY,
    cursor          INTEGER NOT NULL DEFAULT 0,
    pending_first   INTEGER,
    pending_last    INTEGER,
    pending_key     TEXT,
    last_success_at INTEGER,
    last_error      TEXT,
    last_error_kind TEXT,
    last_error_at   INTEGER,
    requested_at    INTEGER
);
INSERT INTO sync_streams (stream) VALUES ('events'), ('captures'), ('manifest'), ('payouts');

-- Capture bytes on their way to `captures/<sha256>`. A multipart upload's
-- id and its finished parts are kept so a restart resumes, not restarts.
CREATE TABLE capture_sync (
    sha256      TEXT    PRIMARY KEY,
    state       TEXT    NOT NULL CHECK (state IN ('uploading', 'done')),
    upload_id   TEXT,
    part_size   INTEGER,
    done_at     INTEGER
);
CREATE TABLE capture_sync_parts (
    sha256      TEXT    NOT NULL,
    part_number INTEGER NOT NULL,
    etag        TEXT    NOT NULL,
    -- base64 CRC32 of the part, as S3 checked it on arrival.
    crc32       TEXT    NOT NULL,
    bytes       INTEGER NOT NULL,
    PRIMARY KEY (sha256, part_number)
);

-- Files to put in the bucket as they are (payout statements), by key.
CREATE TABLE sync_files (
    key         TEXT    PRIMARY KEY,
    path        TEXT    NOT NULL,
    queued_at   INTEGER NOT NULL,
    uploaded_at INTEGER
);

-- Box-wide switches an admin sets (freezing manifest updates during doors).
CREATE TABLE box_settings (
    key         TEXT    PRIMARY KEY,
    value       TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT    NOT NULL
);
