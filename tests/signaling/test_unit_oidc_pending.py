"""The pending single sign-on sealed into its cookie, without a network."""

from __future__ import annotations

import base64
import hashlib

from signaling.oidc_pending import PENDING_LIFETIME_SECONDS, PendingSignIn, PendingSignInBox

NOW = 1_800_000_000.0


def test_a_sealed_sign_in_opens_to_the_same_values():
    box = PendingSignInBox("session secret one")
    pending = PendingSignIn.new(NOW)
    assert box.open(box.seal(pending), NOW + 5) == pending


def test_the_sealed_value_shows_none_of_its_secrets():
    pending = PendingSignIn.new(NOW)
    sealed = PendingSignInBox("session secret one").seal(pending)
    for secret in (pending.state, pending.nonce, pending.code_verifier):
        assert secret not in sealed
        assert secret.encode() not in base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))


def test_a_changed_byte_opens_to_nothing():
    box = PendingSignInBox("session secret one")
    sealed = box.seal(PendingSignIn.new(NOW))
    flipped = sealed[:20] + ("A" if sealed[20] != "A" else "B") + sealed[21:]
    assert box.open(flipped, NOW) is None


def test_another_servers_secret_opens_to_nothing():
    sealed = PendingSignInBox("session secret one").seal(PendingSignIn.new(NOW))
    assert PendingSignInBox("session secret two").open(sealed, NOW) is None


def test_a_sign_in_older_than_its_lifetime_opens_to_nothing():
    box = PendingSignInBox("session secret one")
    sealed = box.seal(PendingSignIn.new(NOW))
    assert box.open(sealed, NOW + PENDING_LIFETIME_SECONDS - 1) is not None
    assert box.open(sealed, NOW + PENDING_LIFETIME_SECONDS) is None


def test_a_sign_in_from_the_future_opens_to_nothing():
    box = PendingSignInBox("session secret one")
    assert box.open(box.seal(PendingSignIn.new(NOW + 60)), NOW) is None


def test_garbage_missing_and_huge_values_open_to_nothing():
    box = PendingSignInBox("session secret one")
    for value in (None, "", "not base64 at all!", "QUJD", "A" * 5000):
        assert box.open(value, NOW) is None


def test_every_start_has_its_own_state_nonce_and_verifier():
    first, second = PendingSignIn.new(NOW), PendingSignIn.new(NOW)
    assert len({first.state, second.state, first.nonce, second.nonce}) == 4
    assert first.code_verifier != second.code_verifier
    assert 43 <= len(first.code_verifier) <= 128


def test_the_code_challenge_is_rfc_7636_s256_of_the_verifier():
    pending = PendingSignIn.new(NOW)
    digest = hashlib.sha256(pending.code_verifier.encode("ascii")).digest()
    assert pending.code_challenge == base64.urlsafe_b64encode(digest).decode().rstrip("=")
