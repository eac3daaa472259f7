"""Password hashing, invite tokens/API keys and the stored session secret."""

from __future__ import annotations

import hashlib
import re

from signaling.credentials import (
    hash_password,
    hash_token,
    load_or_create_session_secret,
    new_token,
    token_matches,
    verify_password,
)


def test_password_hash_is_argon2id():
    assert hash_password("correct horse").startswith("$argon2id$")


def test_correct_password_verifies():
    assert verify_password(hash_password("correct horse"), "correct horse")


def test_wrong_password_does_not_verify():
    assert not verify_password(hash_password("correct horse"), "correct hors")


def test_malformed_hash_does_not_verify():
    assert not verify_password("not-a-hash", "anything")


def test_same_password_hashes_differently_each_time():
    assert hash_password("same") != hash_password("same")


def test_token_carries_256_random_bits_url_safe():
    token = new_token()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    assert new_token() != token


def test_token_is_stored_as_sha256_hex():
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()


def test_token_matches_its_hash():
    token = new_token()
    assert token_matches(token, hash_token(token))


def test_other_token_does_not_match():
    assert not token_matches(new_token(), hash_token(new_token()))


def test_session_secret_is_created_once_and_reused(tmp_path):
    first = load_or_create_session_secret(tmp_path / "data")
    assert len(first) >= 43
    assert load_or_create_session_secret(tmp_path / "data") == first


def test_session_secret_file_is_private(tmp_path):
    load_or_create_session_secret(tmp_path)
    assert (tmp_path / "session_secret").stat().st_mode & 0o777 == 0o600
