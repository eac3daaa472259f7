"""A single sign-on in progress: what the callback must check, kept in the browser.

`GET /login/sso` makes a fresh `state` (the callback must come back from this browser's own
start: no login CSRF), `nonce` (the ID token must be minted for this start: no replayed token)
and PKCE `code_verifier` (RFC 7636: a code caught on its way through the browser is worthless
without it). They travel in one cookie, sealed with AES-GCM under a key derived from the session
secret: the browser can neither read nor change them, and any node of a cluster can open them,
so the callback needs no shared store. The cookie is HttpOnly and SameSite=Lax (the provider's
redirect back is a cross-site top-level GET, which Lax lets through and Strict would not), scoped
to /login/sso, and lives `PENDING_LIFETIME`.

Pure logic with an injectable clock; the routes are in `signaling.routes_single_sign_on`.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from signaling.sealing import SealingKey

__all__ = ["PENDING_LIFETIME_SECONDS", "PendingSignIn", "PendingSignInBox"]

# Long enough to sign in at the portal, its own second factor included; short enough that a
# cookie left in a browser is soon worthless. The provider's codes live shorter still.
PENDING_LIFETIME_SECONDS = 600

# Far larger than a sealed cookie (about 250 characters); anything longer is not ours.
_MAX_SEALED = 1024
_ASSOCIATED_DATA = b"sprechzimmer sso pending sign-in"


@dataclass(frozen=True)
class PendingSignIn:
    state: str
    nonce: str
    code_verifier: str
    started_at: int  # Unix seconds

    @classmethod
    def new(cls, now: float) -> PendingSignIn:
        # 256 bits each; the verifier is 64 characters of RFC 7636's alphabet (43..128 allowed)
        return cls(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(48),
            started_at=int(now),
        )

    @property
    def code_challenge(self) -> str:
        """S256, the only method RFC 7636 lets a client choose when it can."""
        return str(create_s256_code_challenge(self.code_verifier))


class PendingSignInBox:
    """Seals a `PendingSignIn` into a cookie value and opens it again."""

    def __init__(self, session_secret: str) -> None:
        self._key = SealingKey(
            session_secret,
            b"sprechzimmer sso pending v1",
            "a session secret is needed to seal single sign-on state",
        )

    def seal(self, pending: PendingSignIn) -> str:
        plain = json.dumps(
            [pending.state, pending.nonce, pending.code_verifier, pending.started_at]
        ).encode("utf-8")
        sealed = self._key.seal(plain, _ASSOCIATED_DATA)
        return base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")

    def open(self, sealed: str | None, now: float) -> PendingSignIn | None:
        """The sign-in sealed in `sealed`, or None when it is missing, forged, from another
        secret, or older than `PENDING_LIFETIME_SECONDS`."""
        if not sealed or len(sealed) > _MAX_SEALED:
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
            plain = self._key.open(raw, _ASSOCIATED_DATA)
            if plain is None:
                return None
            state, nonce, verifier, started_at = json.loads(plain)
        except (binascii.Error, ValueError, TypeError):
            return None
        if not isinstance(started_at, int) or not 0 <= now - started_at < PENDING_LIFETIME_SECONDS:
            return None
        return PendingSignIn(state, nonce, verifier, started_at)
