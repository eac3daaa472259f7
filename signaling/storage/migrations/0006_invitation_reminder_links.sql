-- Issue #13: a reminder e-mail carries the invite link. The appointment keeps only the token's
-- SHA-256, so for a pending reminder the link itself is kept beside the address, sealed
-- (AES-GCM under a key derived from the session secret, as TOTP secrets are: a copy of the
-- database alone cannot open it). It goes with the row: when the reminder is sent, the
-- appointment cancelled, its link replaced, or the purge clears the appointment. NULL: the
-- reminder names no link and points to the invitation's.
ALTER TABLE invitation_reminders ADD COLUMN link_sealed TEXT;
