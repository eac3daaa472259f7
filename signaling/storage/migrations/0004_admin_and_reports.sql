-- Issue #13: the admin role, provisioning by the portal, one-time set-password links, the audit
-- log, the service's daily health counters and the proof of each client's consent.

-- An admin may see usage and health reports and manage accounts; a therapist without the role
-- sees only their own. `external_id` is the portal's account id (PUT /api/v1/therapists/{id}),
-- NULL for accounts made here; `display_name` is the therapist's own name for the admin's list.
ALTER TABLE therapists ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1));
ALTER TABLE therapists ADD COLUMN external_id TEXT;
ALTER TABLE therapists ADD COLUMN display_name TEXT;
CREATE UNIQUE INDEX therapists_external_id ON therapists (external_id);

-- A one-time link to set a password (a new account, a reset). Only the token's SHA-256 is kept;
-- the row is deleted when the link is used, replaced by a newer link, or expired (purge).
CREATE TABLE password_links (
    id           INTEGER PRIMARY KEY,
    token_hash   TEXT    NOT NULL UNIQUE,
    therapist_id INTEGER NOT NULL REFERENCES therapists (id),
    created_at   TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL
);

-- Who (an admin's username, "cli" or "api:<key name>") did what to which account or key, when.
-- Never client data. Deleted after privacy.statistics_retention_days.
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY,
    at     TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);

-- The service's own counters per UTC day (joins, joins that reached media, ICE failures,
-- reconnects, and the join-to-media histogram's buckets), added to by each node. No appointment,
-- therapist or person: a day, a counter name and a number. Deleted after the retention period.
CREATE TABLE health_daily (
    day     TEXT    NOT NULL,
    counter TEXT    NOT NULL,
    value   INTEGER NOT NULL,
    PRIMARY KEY (day, counter)
);

-- What the client agreed to and when (Art. 7(1) GDPR: the controller must be able to show the
-- consent), without the client's name: the purge clears the name from the appointment at its
-- end, this row stays for the retention period.
CREATE TABLE consent_records (
    id             INTEGER PRIMARY KEY,
    appointment_id INTEGER NOT NULL REFERENCES appointments (id),
    terms_version  TEXT    NOT NULL,
    consent_at     TEXT    NOT NULL
);
CREATE INDEX consent_records_appointment ON consent_records (appointment_id);
