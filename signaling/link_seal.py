"""Invite links kept for a pending reminder e-mail, sealed for the database.

The appointment keeps only its token's SHA-256, so a reminder could not name the link. While a
reminder is pending the link is kept beside the client's address, encrypted with AES-GCM under a
key derived (HKDF) from the session secret, as `signaling.totp.SecretBox` does for TOTP secrets:
a copy of the database alone (a backup, a replica) cannot open it, and the key already lives
where operators keep secrets. The appointment's id is the associated data, so a sealed link
copied to another appointment's row does not open. Changing the session secret makes pending
links unreadable; those reminders then point to the invitation's link instead.
"""

from __future__ import annotations

from signaling.sealing import SealingKey

__all__ = ["LinkSeal"]

_VERSION = "v1."
_NONCE_BYTES = 12


class LinkSeal:
    def __init__(self, session_secret: str) -> None:
        self._key = SealingKey(
            session_secret,
            b"sprechzimmer reminder invite link v1",
            "a session secret is needed to keep invite links for reminders",
        )

    def seal(self, link: str, appointment_id: int) -> str:
        return self._key.seal_text(link, _aad(appointment_id))

    def open(self, sealed: str, appointment_id: int) -> str | None:
        """The link, or None when it cannot be opened (another session secret, another
        appointment's row, damaged)."""
        return self._key.open_text(sealed, _aad(appointment_id))


def _aad(appointment_id: int) -> bytes:
    return f"appointment:{appointment_id}".encode("ascii")
