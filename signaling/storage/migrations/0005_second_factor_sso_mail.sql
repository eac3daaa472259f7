-- Issue #13, part B: two-factor sign-in (TOTP) and e-mail invitations. Single sign-on needs no
-- table of its own: it maps the provider's subject to therapists.external_id (0004).

-- A therapist's authenticator app. `secret_sealed` is the TOTP secret encrypted (AES-GCM) with a
-- key derived from the server's session secret, so a copy of the database (a backup, a replica)
-- alone cannot produce codes. `confirmed_at` is NULL while enrolment waits for the first valid
-- code; only a confirmed row asks for a second factor. `last_used_step` is the 30-second step of
-- the last accepted code: a code is accepted only for a later step, so each works once.
CREATE TABLE therapist_totp (
    therapist_id   INTEGER PRIMARY KEY REFERENCES therapists (id),
    secret_sealed  TEXT    NOT NULL,
    confirmed_at   TEXT,
    last_used_step INTEGER
);

-- Recovery codes: 80 random bits each, so a SHA-256 is enough (like invite tokens); shown once,
-- each usable once.
CREATE TABLE recovery_codes (
    id           INTEGER PRIMARY KEY,
    therapist_id INTEGER NOT NULL REFERENCES therapists (id),
    code_hash    TEXT    NOT NULL,
    used_at      TEXT
);

CREATE INDEX recovery_codes_therapist ON recovery_codes (therapist_id);

-- A client's e-mail address is kept only while a reminder for the appointment is still to be
-- sent; the row goes when the reminder is sent, the appointment is cancelled, or the purge
-- clears the appointment's name.
CREATE TABLE invitation_reminders (
    appointment_id INTEGER PRIMARY KEY REFERENCES appointments (id),
    email          TEXT    NOT NULL,
    remind_at      TEXT    NOT NULL
);
