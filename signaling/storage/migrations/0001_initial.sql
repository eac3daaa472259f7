-- Times are UTC ISO-8601 text with second precision and a Z suffix ("2025-01-31T09:00:00Z"),
-- so text order is time order. session_date is a date only ("2025-01-31").

CREATE TABLE therapists (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    TEXT    NOT NULL
);

CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- A name may be reused once the key that had it is revoked.
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;

CREATE TABLE appointments (
    id                  INTEGER PRIMARY KEY,
    therapist_id        INTEGER NOT NULL REFERENCES therapists (id),
    starts_at           TEXT    NOT NULL,
    duration_minutes    INTEGER NOT NULL CHECK (duration_minutes > 0),
    opens_at            TEXT    NOT NULL,
    valid_until         TEXT    NOT NULL,
    note                TEXT,
    invite_token_hash   TEXT UNIQUE,
    client_display_name TEXT,
    client_binding_hash TEXT,
    terms_version       TEXT,
    consent_at          TEXT,
    state               TEXT    NOT NULL DEFAULT 'scheduled'
        CHECK (state IN ('scheduled', 'waiting', 'in_call', 'ended', 'cancelled')),
    both_present_at     TEXT,
    ended_at            TEXT,
    purged_at           TEXT,
    created_at          TEXT    NOT NULL
);

CREATE INDEX appointments_therapist_starts ON appointments (therapist_id, starts_at);
CREATE INDEX appointments_valid_until ON appointments (valid_until) WHERE purged_at IS NULL;

-- The only per-session data that outlives the purge: who, which day, how long.
CREATE TABLE session_statistics (
    id               INTEGER PRIMARY KEY,
    therapist_id     INTEGER NOT NULL REFERENCES therapists (id),
    session_date     TEXT    NOT NULL,
    duration_seconds INTEGER NOT NULL CHECK (duration_seconds >= 0)
);

CREATE INDEX session_statistics_date ON session_statistics (session_date);
