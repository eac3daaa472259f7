"""AES-GCM under a key derived (HKDF-SHA256) from the server's session secret, one key per use.

What the service keeps sealed -- TOTP secrets and pending reminders' invite links in the database,
the single sign-on start in a cookie -- is sealed here, so a copy of the database or a cookie alone
opens nothing, and the key lives where operators already keep secrets. Each use names its own
`purpose` (the HKDF info), so one use's sealed value never opens as another's; the associated
data binds a value to its row.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SealingKey"]

_NONCE_BYTES = 12
_VERSION = "v1."


class SealingKey:
    def __init__(self, session_secret: str, purpose: bytes, missing: str) -> None:
        """`missing`: the error's words when there is no session secret."""
        if not session_secret:
            raise ValueError(missing)
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
            session_secret.encode("utf-8")
        )
        self._aead = AESGCM(key)

    def seal(self, plain: bytes, associated: bytes) -> bytes:
        """The random nonce followed by the ciphertext and its tag."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plain, associated)

    def open(self, sealed: bytes, associated: bytes) -> bytes | None:
        """The plain bytes, or None when `sealed` is damaged, forged or from another key."""
        try:
            return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], associated)
        except (InvalidTag, ValueError):
            return None

    def seal_text(self, plain: str, associated: bytes) -> str:
        """`v1.` and the sealed bytes in URL-safe base64: the form kept in database rows."""
        sealed = self.seal(plain.encode("utf-8"), associated)
        return _VERSION + base64.urlsafe_b64encode(sealed).decode("ascii")

    def open_text(self, sealed: str, associated: bytes) -> str | None:
        if not sealed.startswith(_VERSION):
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_VERSION) :])
        except (binascii.Error, ValueError):
            return None
        plain = self.open(raw, associated)
        if plain is None:
            return None
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            return None
