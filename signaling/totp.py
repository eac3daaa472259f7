"""Two-factor sign-in: TOTP codes (RFC 6238), recovery codes, the enrolment QR code, and the
signed ticket that carries a sign-in from the password step to the code step.

Pure logic with an injectable clock; the routes (`signaling.routes_second_factor`) hold the
flow. The TOTP secret is stored encrypted (AES-GCM, key derived by HKDF from the server's
session secret): a database copy alone (a backup, a PostgreSQL replica elsewhere) then cannot
produce codes, and the key already lives where operators keep secrets (a 0600 file in the data
directory, or `server.session_secret`). Changing the session secret makes every enrolment
unreadable: therapists then enrol again (`sprechzimmer therapist totp-reset`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyotp
import segno
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from signaling.sealing import SealingKey

__all__ = [
    "RECOVERY_CODE_COUNT",
    "STEP_SECONDS",
    "SecretBox",
    "Ticket",
    "TicketSigner",
    "hash_recovery_code",
    "matching_step",
    "new_recovery_codes",
    "new_secret",
    "normalise_recovery_code",
    "provisioning_uri",
    "qr_svg_data_uri",
]

# RFC 6238's default, and what every authenticator app assumes.
STEP_SECONDS = 30
# One step either side: a phone's clock a little off, or a code typed as it turned over.
VALID_WINDOW = 1
RECOVERY_CODE_COUNT = 10
# 16 characters of base32: 80 bits each, so a SHA-256 of it is enough even against a stolen
# database (no argon2 needed, unlike a password a person chose).
_RECOVERY_CODE_LENGTH = 16
ISSUER = "Sprechzimmer"


def new_secret() -> str:
    """A 160-bit base32 secret (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg_data_uri(uri: str) -> str:
    """The QR code of `uri` as an SVG data: URI for an <img> (the CSP allows img data:; an SVG
    shown as an image runs no script)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step whose code `code` is, within one step of `now`; None if it is none's."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    now = time.time() if now is None else now
    totp = pyotp.TOTP(secret)
    current = int(now // STEP_SECONDS)
    found = None
    # every candidate is compared (constant time each), not only up to the first match
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def new_recovery_codes() -> list[str]:
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o, 1/l: read from paper
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(alphabet) for _ in range(_RECOVERY_CODE_LENGTH))
        codes.append("-".join(raw[i : i + 4] for i in range(0, _RECOVERY_CODE_LENGTH, 4)))
    return codes


def normalise_recovery_code(code: str) -> str | None:
    """The code as stored (lower case, grouped by 4), or None if it cannot be one."""
    raw = code.strip().lower().replace("-", "").replace(" ", "")
    if len(raw) != _RECOVERY_CODE_LENGTH or not raw.isascii() or not raw.isalnum():
        return None
    return "-".join(raw[i : i + 4] for i in range(0, _RECOVERY_CODE_LENGTH, 4))


def hash_recovery_code(code: str) -> str:
    return hashlib.sha256(code.encode("ascii")).hexdigest()


class SecretBox:
    """Encrypts TOTP secrets for the database with a key derived from the session secret."""

    def __init__(self, session_secret: str) -> None:
        self._key = SealingKey(
            session_secret,
            b"sprechzimmer totp secret v1",
            "a session secret is needed to store TOTP secrets",
        )

    def seal(self, secret: str, therapist_id: int) -> str:
        # the therapist's id as associated data: a sealed secret copied to another row fails
        return self._key.seal_text(secret, _aad(therapist_id))

    def open(self, sealed: str, therapist_id: int) -> str | None:
        """The secret, or None when it cannot be opened (another session secret)."""
        return self._key.open_text(sealed, _aad(therapist_id))


def _aad(therapist_id: int) -> bytes:
    return f"therapist:{therapist_id}".encode("ascii")


@dataclass(frozen=True)
class Ticket:
    """Proof that the password step passed for `therapist_id`, valid until `expires_at`.
    `purpose` is ``code`` (enter a code) or ``enrol`` (2FA is required but not set up yet)."""

    therapist_id: int
    purpose: str
    expires_at: int


class TicketSigner:
    """HMAC-signed tickets: stateless, so any node (or worker) can take the second step. A
    ticket is bound to the account's password hash, so a password reset kills it, and it lives
    `TICKET_SECONDS`; it grants nothing without a valid code, and codes are single-use."""

    TICKET_SECONDS = 300

    def __init__(self, session_secret: str, clock: Callable[[], float] = time.time) -> None:
        self._key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"sprechzimmer login ticket v1"
        ).derive(session_secret.encode("utf-8"))
        self._clock = clock

    def issue(self, therapist_id: int, purpose: str, password_hash: str) -> str:
        expires = int(self._clock()) + self.TICKET_SECONDS
        body = f"{therapist_id}.{purpose}.{expires}.{secrets.token_urlsafe(9)}"
        return f"{body}.{self._mac(body, password_hash)}"

    def peek(self, ticket: str) -> int | None:
        """The therapist id the ticket names, unchecked (to look up the password hash)."""
        head = ticket.split(".", 1)[0]
        if not head.isascii() or not head.isdigit() or len(head) > 18:
            return None
        return int(head)

    def check(self, ticket: str, password_hash: str) -> Ticket | None:
        """The ticket if its signature holds for `password_hash` and it has not expired."""
        parts = ticket.split(".")
        if len(parts) != 5 or len(ticket) > 200:
            return None
        body, mac = ".".join(parts[:4]), parts[4]
        if not hmac.compare_digest(mac, self._mac(body, password_hash)):
            return None
        therapist_id, purpose, expires = parts[0], parts[1], parts[2]
        if not expires.isdigit() or int(expires) < self._clock():
            return None
        return Ticket(int(therapist_id), purpose, int(expires))

    def _mac(self, body: str, password_hash: str) -> str:
        digest = hmac.new(self._key, f"{body}|{password_hash}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).decode("ascii").rstrip("=")
