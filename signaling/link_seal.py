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

import base64
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["LinkSeal"]

_VERSION = "v1."
_NONCE_BYTES = 12


class LinkSeal:
    def __init__(self, session_secret: str) -> None:
        if not session_secret:
            raise ValueError("a session secret is needed to keep invite links for reminders")
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=b"sprechzimmer reminder invite link v1",
        ).derive(session_secret.encode("utf-8"))
        self._aead = AESGCM(key)

    def seal(self, link: str, appointment_id: int) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, link.encode("utf-8"), _aad(appointment_id))
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, appointment_id: int) -> str | None:
        """The link, or None when it cannot be opened (another session secret, another
        appointment's row, damaged)."""
        if not sealed.startswith(_VERSION):
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_VERSION) :])
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(appointment_id))
            return plain.decode("utf-8")
        except Exception:
            return None


def _aad(appointment_id: int) -> bytes:
    return f"appointment:{appointment_id}".encode("ascii")
