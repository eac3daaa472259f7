-- Therapist sign-in sessions. The browser holds the random session token in a cookie; only its
-- SHA-256 is stored, so a copy of the database cannot be used to sign in. The CSRF token is kept
-- as is: the dashboard fetches it from /api/therapist/me, and without the session token it is
-- worth nothing.

CREATE TABLE login_sessions (
    id           INTEGER PRIMARY KEY,
    token_hash   TEXT    NOT NULL UNIQUE,
    therapist_id INTEGER NOT NULL REFERENCES therapists (id),
    csrf_token   TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    last_seen_at TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL
);

CREATE INDEX login_sessions_expires ON login_sessions (expires_at);
