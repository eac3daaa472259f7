"""ID token checks without a network: tokens made here with joserfc, checked as the callback
checks the provider's."""

from __future__ import annotations

import base64
import json
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from signaling.oidc_id_token import IdTokenInvalid, UnknownSigningKey, validated_claims

ISSUER = "https://portal.example/auth"
CLIENT = "sprechzimmer"
NONCE = "n-0S6_WzA2Mj"
NOW = int(time.time())
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
PUBLISHED = KeySet([RSAKey.import_key(KEY.as_dict(private=False))])


def claims(**changes: object) -> dict[str, object]:
    base = {
        "iss": ISSUER,
        "sub": "portal-account-17",
        "aud": CLIENT,
        "exp": NOW + 300,
        "iat": NOW,
        "nonce": NONCE,
    }
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def signed(payload: dict[str, object], key=KEY, alg: str = "RS256") -> str:
    return jwt.encode({"alg": alg, "kid": key.kid}, payload, key, algorithms=[alg])


def check(token: str, keys: KeySet = PUBLISHED, algorithms=("RS256",)) -> dict[str, object]:
    return validated_claims(
        token,
        keys,
        issuer=ISSUER,
        client_id=CLIENT,
        nonce=NONCE,
        algorithms=algorithms,
        now=NOW,
    )


def reason(token: str, **kwargs: object) -> str:
    with pytest.raises(IdTokenInvalid) as caught:
        check(token, **kwargs)  # type: ignore[arg-type]
    return caught.value.reason


def test_a_token_signed_by_the_published_key_with_the_right_claims_is_accepted():
    assert check(signed(claims()))["sub"] == "portal-account-17"


def test_an_unsigned_token_is_refused():
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    unsigned = f"{part({'alg': 'none'})}.{part(claims())}."
    assert reason(unsigned)


def test_a_token_signed_with_a_shared_secret_is_refused_even_if_the_set_has_that_key():
    secret = OctKey.generate_key(256, parameters={"kid": "k1"})
    token = signed(claims(), key=secret, alg="HS256")
    assert reason(token, keys=KeySet([secret]))


def test_only_asymmetric_algorithms_are_ever_allowed():
    assert reason(signed(claims()), algorithms=("HS256", "none")) == "no_usable_algorithm"


def test_a_key_id_the_set_does_not_have_asks_for_the_keys_again():
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    with pytest.raises(UnknownSigningKey):
        check(signed(claims(), key=stranger))


def test_a_token_without_a_nonce_is_refused():
    assert reason(signed(claims(nonce=None))) == "missing_claim:nonce"


def test_several_audiences_need_us_as_the_authorized_party():
    assert reason(signed(claims(aud=[CLIENT, "other"]))) == "missing_claim:azp"
    assert check(signed(claims(aud=[CLIENT, "other"], azp=CLIENT)))["azp"] == CLIENT


def test_a_token_a_little_past_its_expiry_is_still_accepted_within_the_leeway():
    assert check(signed(claims(exp=NOW - 30)))
    assert reason(signed(claims(exp=NOW - 90))) == "expired_token:exp"
