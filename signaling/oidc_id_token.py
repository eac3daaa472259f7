"""The ID token from the portal's provider: its signature against the provider's published keys,
then its claims (OpenID Connect Core 1.0, 3.1.3.7).

The signature is checked by joserfc (authlib's own JOSE library, which authlib's clients use),
the claims by authlib's `CodeIDToken`: `iss` is the configured issuer, `aud` holds our client
id (and `azp` names us when there are other audiences), `exp` has not passed, `nonce` is the one
this browser's start sent. Only asymmetric algorithms are accepted: "none" and the HMAC ones
(keyed with the client secret, which more than the provider knows) never sign a token we take.

Pure logic with an injectable clock; `signaling.oidc_client` fetches the keys and the token.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import ClaimError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "CLOCK_LEEWAY_SECONDS",
    "IdTokenInvalid",
    "UnknownSigningKey",
    "validated_claims",
]

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

# The provider's clock and ours may differ a little. authlib's client allows two minutes; one
# is plenty here, since the token is checked the moment it arrives from the provider.
CLOCK_LEEWAY_SECONDS = 60


class IdTokenInvalid(Exception):
    """The ID token is not one we may accept. `reason` is for the log: a short code such as
    ``bad_signature`` or ``invalid_claim:aud``, never the token or a claim's value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownSigningKey(IdTokenInvalid):
    """Signed with a key id the key set does not have: the provider may have rotated its keys,
    so fetching them again may help."""


def validated_claims(
    id_token: str,
    keys: KeySet,
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    algorithms: Collection[str],
    access_token: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The claims of `id_token` once its signature and claims hold; else `IdTokenInvalid`."""
    allowed = sorted(set(algorithms) & ASYMMETRIC_ALGORITHMS)
    if not allowed:
        raise IdTokenInvalid("no_usable_algorithm")
    try:
        token = jwt.decode(id_token, keys, algorithms=allowed)
    except InvalidKeyIdError:
        raise UnknownSigningKey("unknown_key") from None
    except JoseError as exc:
        raise IdTokenInvalid(exc.error or "undecodable") from None
    except ValueError:  # not even the three dot-separated base64 parts
        raise IdTokenInvalid("undecodable") from None
    options: dict[str, Any] = {
        "iss": {"essential": True, "value": issuer},
        "aud": {"essential": True, "value": client_id},
        "sub": {"essential": True},
    }
    params: dict[str, Any] = {"nonce": nonce, "client_id": client_id}
    if access_token is not None:
        params["access_token"] = access_token  # at_hash, when the provider sends one
    claims = CodeIDToken(token.claims, token.header, options, params)
    try:
        claims.validate(now=int(time.time() if now is None else now), leeway=CLOCK_LEEWAY_SECONDS)
    except ClaimError as exc:
        raise IdTokenInvalid(f"{exc.error}:{exc.claim}") from None
    except JoseError as exc:
        raise IdTokenInvalid(exc.error or "invalid_claims") from None
    return dict(claims)
