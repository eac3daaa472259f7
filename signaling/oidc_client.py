"""The portal's OpenID Connect provider, as this service (a confidential client) talks to it: the
discovery document and signing keys, cached; the authorization request with PKCE; the exchange
of the code for the ID token, whose checks are `signaling.oidc_id_token`'s.

HTTP goes through aiohttp, which the service already has; authlib supplies PKCE and the ID
token's claim checks. Each exchange opens its own short-lived `ClientSession`: sign-ins come a
few a minute at most, and nothing then outlives a request or needs closing at shutdown.

Every failure is one of two exceptions with a short `reason` for the log (never a token, code,
secret or claim value): `CodeRejected` when the provider refused this browser's code (expired,
used, not its verifier) -- starting over helps; `ProviderUnavailable` for everything else
(unreachable, an error status, a malformed answer, our client refused, an ID token that does not
hold) -- starting over does not.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from yarl import URL

from signaling.config import OidcConfig
from signaling.oidc_id_token import (
    ASYMMETRIC_ALGORITHMS,
    IdTokenInvalid,
    UnknownSigningKey,
    validated_claims,
)
from signaling.oidc_pending import PendingSignIn

__all__ = [
    "DISCOVERY_TTL_SECONDS",
    "CodeRejected",
    "OidcClient",
    "ProviderMetadata",
    "ProviderUnavailable",
]

# The discovery document and keys are read again after an hour: endpoints rarely move, and a
# provider announces a new signing key well before it signs with it. A token signed with a key
# we do not know yet fetches the keys at once, but at most once per KEYS_REFETCH_SECONDS, so
# made-up key ids cannot turn us into a loop of requests to the provider.
DISCOVERY_TTL_SECONDS = 3600.0
KEYS_REFETCH_SECONDS = 60.0
# A provider that does not answer within this is down for the person waiting at the login page.
TIMEOUT = aiohttp.ClientTimeout(total=10)
# Discovery documents and key sets are a few KB, token answers less; a provider answering
# megabytes is broken, and its answer is not held in memory.
MAX_RESPONSE_BYTES = 256 * 1024
# OAuth error codes are short lower-case words (RFC 6749, 5.2); anything else is logged as "other".
_ERROR_CODE = re.compile(r"^[a-z_]{1,40}$")
# The methods a client with a secret may use (OpenID Connect Core 9), our preference first.
_CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


class ProviderUnavailable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CodeRejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ProviderMetadata:
    """What we use of the discovery document (OpenID Connect Discovery 1.0, 3)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    client_auth: str
    id_token_algorithms: tuple[str, ...]


class OidcClient:
    def __init__(
        self,
        config: OidcConfig,
        redirect_uri: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if config.issuer is None or config.client_id is None or config.client_secret is None:
            raise ValueError("oidc.issuer, client_id and client_secret are needed")
        self._issuer = config.issuer
        self._client_id = config.client_id
        self._client_secret = config.client_secret
        self.redirect_uri = redirect_uri
        self._clock = clock
        self._fetching = asyncio.Lock()
        self._metadata: ProviderMetadata | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    async def authorization_url(self, pending: PendingSignIn) -> str:
        """Where to send the browser to sign in at the portal (authorization code flow)."""
        metadata = await self.metadata()
        # update_query keeps any parameters the provider's endpoint already carries
        url = URL(metadata.authorization_endpoint).update_query(
            response_type="code",
            client_id=self._client_id,
            redirect_uri=self.redirect_uri,
            scope="openid",
            state=pending.state,
            nonce=pending.nonce,
            code_challenge=pending.code_challenge,
            code_challenge_method="S256",
        )
        return str(url)

    async def redeem(self, code: str, pending: PendingSignIn) -> dict[str, Any]:
        """Exchange `code` for the ID token and return its checked claims."""
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": pending.code_verifier,
        }
        headers = {}
        if metadata.client_auth == "client_secret_basic":
            # as authlib's clients send it: "id:secret" in base64, not form-encoded first
            basic = aiohttp.encode_basic_auth(self._client_id, self._client_secret)
            headers["Authorization"] = basic
        else:
            form |= {"client_id": self._client_id, "client_secret": self._client_secret}
        status, answer = await _request_json(
            "POST", metadata.token_endpoint, "token", data=form, headers=headers
        )
        if status != 200:
            raise _token_error(status, answer)
        id_token, access_token = answer.get("id_token"), answer.get("access_token")
        if not isinstance(id_token, str):
            raise ProviderUnavailable("token_without_id_token")
        return await self._validated(
            id_token,
            pending.nonce,
            access_token if isinstance(access_token, str) else None,
            metadata,
        )

    async def metadata(self) -> ProviderMetadata:
        """The discovery document, read at most once per `DISCOVERY_TTL_SECONDS`."""
        async with self._fetching:
            if self._metadata is None or self._age(self._metadata_at) >= DISCOVERY_TTL_SECONDS:
                url = f"{self._issuer}/.well-known/openid-configuration"
                status, document = await _request_json("GET", url, "discovery")
                if status != 200:
                    raise ProviderUnavailable(f"discovery_status_{status}")
                self._metadata = _metadata_from(document, self._issuer)
                self._metadata_at = self._clock()
                self._keys = None  # the key set belongs to the document it came with
            return self._metadata

    # --- helpers

    async def _validated(
        self,
        id_token: str,
        nonce: str,
        access_token: str | None,
        metadata: ProviderMetadata,
    ) -> dict[str, Any]:
        def check(keys: KeySet) -> dict[str, Any]:
            return validated_claims(
                id_token,
                keys,
                issuer=metadata.issuer,
                client_id=self._client_id,
                nonce=nonce,
                algorithms=metadata.id_token_algorithms,
                access_token=access_token,
                now=time.time(),
            )

        try:
            try:
                return check(await self._key_set(metadata))
            except UnknownSigningKey:
                if self._age(self._keys_at) < KEYS_REFETCH_SECONDS:
                    raise
                return check(await self._key_set(metadata, refresh=True))
        except IdTokenInvalid as exc:
            raise ProviderUnavailable(f"id_token_{exc.reason}") from None

    async def _key_set(self, metadata: ProviderMetadata, refresh: bool = False) -> KeySet:
        async with self._fetching:
            if self._keys is None or refresh:
                status, document = await _request_json("GET", metadata.jwks_uri, "keys")
                if status != 200:
                    raise ProviderUnavailable(f"keys_status_{status}")
                try:
                    self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
                except (JoseError, ValueError, KeyError, TypeError):
                    raise ProviderUnavailable("keys_unusable") from None
                self._keys_at = self._clock()
            return self._keys

    def _age(self, at: float) -> float:
        return self._clock() - at


async def _request_json(
    method: str, url: str, what: str, headers: dict[str, str] | None = None, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    """The status and JSON object of one request; `ProviderUnavailable` when there is none.
    Redirects are not followed: a token endpoint that redirects is misconfigured, and the form
    holds the client secret."""
    try:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.request(
                method,
                url,
                headers={"Accept": "application/json", **(headers or {})},
                allow_redirects=False,
                **kwargs,
            ) as response,
        ):
            status = response.status
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise ProviderUnavailable(f"{what}_too_large")
    except (aiohttp.ClientError, TimeoutError):
        raise ProviderUnavailable(f"{what}_unreachable") from None
    try:
        document = json.loads(body)
    except ValueError:
        raise ProviderUnavailable(f"{what}_status_{status}_not_json") from None
    if not isinstance(document, dict):
        raise ProviderUnavailable(f"{what}_status_{status}_not_json")
    return status, document


def _metadata_from(document: dict[str, Any], configured_issuer: str) -> ProviderMetadata:
    issuer = document.get("issuer")
    # The configuration drops a trailing slash; the ID token's `iss` must match the document's
    # own spelling exactly (Discovery 1.0, 4.3), so that is what is kept.
    if not isinstance(issuer, str) or issuer.rstrip("/") != configured_issuer:
        raise ProviderUnavailable("discovery_issuer_mismatch")
    endpoints = [document.get(key) for key in ("authorization_endpoint", "token_endpoint")]
    endpoints.append(document.get("jwks_uri"))
    if not all(isinstance(e, str) and e.startswith(("https://", "http://")) for e in endpoints):
        raise ProviderUnavailable("discovery_incomplete")
    # Absent, the method list defaults to client_secret_basic (Discovery 1.0, 3).
    offered = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    client_auth = next((m for m in _CLIENT_AUTH_METHODS if m in offered), None)
    if client_auth is None:
        raise ProviderUnavailable("discovery_no_client_secret_method")
    # RS256 is the one every provider must offer (Core 1.0, 15.1).
    announced = document.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = tuple(sorted(a for a in announced if a in ASYMMETRIC_ALGORITHMS))
    if not algorithms:
        raise ProviderUnavailable("discovery_no_asymmetric_algorithm")
    authorization_endpoint, token_endpoint, jwks_uri = endpoints
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=str(authorization_endpoint),
        token_endpoint=str(token_endpoint),
        jwks_uri=str(jwks_uri),
        client_auth=client_auth,
        id_token_algorithms=algorithms,
    )


def _token_error(status: int, answer: dict[str, Any]) -> Exception:
    error = answer.get("error")
    code = error if isinstance(error, str) and _ERROR_CODE.match(error) else "other"
    if 400 <= status < 500 and code != "invalid_client":
        # invalid_grant above all: the code expired, was used, or its verifier does not match
        return CodeRejected(code)
    if code == "invalid_client":
        # our client id or secret: the operator must fix the configuration
        return ProviderUnavailable("token_client_rejected")
    return ProviderUnavailable(f"token_status_{status}")
