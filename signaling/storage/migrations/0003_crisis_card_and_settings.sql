-- The crisis card (issue #14): a therapist may ask the client, before joining, where they are
-- right now and a phone number for emergencies. A row exists while the card is switched on for
-- the appointment; `location` and `phone` stay NULL until the client fills them. The purge
-- deletes the row with the client's name (secure_delete zeroes the freed page).
CREATE TABLE crisis_cards (
    appointment_id INTEGER PRIMARY KEY REFERENCES appointments (id),
    location       TEXT,
    phone          TEXT
);

-- Per-therapist preferences. No row means the defaults: the arrival alert is on.
CREATE TABLE therapist_settings (
    therapist_id  INTEGER PRIMARY KEY REFERENCES therapists (id),
    arrival_alert INTEGER NOT NULL DEFAULT 1 CHECK (arrival_alert IN (0, 1))
);
