"""Passwords, invite tokens, API keys and the session secret.

Passwords are hashed with argon2id. Invite tokens and API keys carry 256 random bits, so a fast
hash is enough: they are stored only as SHA-256 hex and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "generate_password",
    "hash_password",
    "hash_token",
    "load_or_create_session_secret",
    "new_token",
    "password_needs_rehash",
    "token_matches",
    "verify_password",
]

_hasher = PasswordHasher()

SESSION_SECRET_FILE = "session_secret"


def hash_password(password: str) -> str:
    """Return an argon2id hash (PHC string with its own salt and parameters)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def new_token() -> str:
    """A 256-bit random token, URL-safe (43 characters). Show it once; store `hash_token` of it."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, token_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), token_hash)


def generate_password() -> str:
    """A random password for bootstrap accounts: 128 bits, 22 URL-safe characters."""
    return secrets.token_urlsafe(16)


def load_or_create_session_secret(data_dir: Path) -> str:
    """Return the secret stored in `data_dir`, creating it (mode 0600) on first use."""
    path = data_dir / SESSION_SECRET_FILE
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    # O_EXCL: if two processes race, the loser reads the winner's secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as stream:
        stream.write(secret + "\n")
    return secret
