"""A real OpenID Connect provider for the single sign-on tests: pyoidc's `Provider` (the
OpenID-certified implementation) behind a small aiohttp app on 127.0.0.1, with pyoidc's own
login form (`UsernamePasswordMako`), one registered client and an RSA signing key.

Two checks a production provider makes are not in pyoidc's OpenID Connect provider: PKCE (only
its OAuth 2 extension provider has it, and skips it when no verifier is sent) and the code's
age. The token route makes both before pyoidc sees the request, with pyoidc's own
`verify_code_challenge` and code factory, so a missing or wrong verifier and an old code are
refused as RFC 7636 and RFC 6749 have it. Reused codes pyoidc refuses itself.

For the tests that a client must refuse what a broken or hostile provider sends, two switches:
`id_token_claims` rewrites the claims of every ID token issued (signed again with the
provider's key, so only the claims are wrong), and `publish_other_key` makes the key set
endpoint publish another key under the signing key's id (so only the signature is wrong).
`token_requests` keeps each token request's form, for the tests to see what the client sent.
"""

from __future__ import annotations

import functools
import hashlib
import json
from base64 import urlsafe_b64decode
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from Cryptodome.PublicKey import RSA
from jwkest.jwk import RSAKey
from jwkest.jws import JWS
from mako.lookup import TemplateLookup
from multidict import CIMultiDict
from oic.extension.provider import Provider as ExtensionProvider
from oic.oic.provider import Provider
from oic.utils.authn.authn_context import PASSWORD, AuthnBroker
from oic.utils.authn.client import verify_client
from oic.utils.authn.user import UsernamePasswordMako
from oic.utils.authz import AuthzHandling
from oic.utils.http_util import Redirect, Response, SeeOther
from oic.utils.keyio import KeyBundle, KeyJar
from oic.utils.sdb import create_session_db
from oic.utils.userinfo import UserInfo

from tests.privacy_canaries import remember

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "USER_PASSWORD", "OidcProvider", "running_provider"]

CLIENT_ID = "sprechzimmer-video"
CLIENT_SECRET = "portal-client-secret-5b1d9e0c7a"
USER_PASSWORD = "portal password 93"
remember(CLIENT_SECRET, USER_PASSWORD)

# pyoidc fills in action, query (the authorization request, to come back to) and login.
LOGIN_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Portal sign-in</title></head>
<body><h1>Portal</h1>
<form action="${action}" method="post">
<input type="hidden" name="query" value="${query | h}">
<label>Login <input name="login" id="portal-login" value="${login | h}"></label>
<label>Password <input type="password" name="password" id="portal-password"></label>
<button type="submit" id="portal-submit">Sign in</button>
</form></body></html>
"""


@functools.cache
def _rsa_key(name: str) -> RSA.RsaKey:
    """A 2048-bit key per name, made once per test process (generation takes a moment)."""
    return RSA.generate(2048)


class OidcProvider:
    def __init__(
        self,
        port: int,
        redirect_uri: str,
        users: dict[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        # It listens on 127.0.0.1 whatever the name; "localhost" makes it another site than an
        # app on 127.0.0.1, as a portal on its own domain is (a browser's SameSite rules).
        self.issuer = f"http://{host}:{port}"
        self.port = port
        self.users = dict(users or {})
        self.id_token_claims: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.publish_other_key = False
        self.token_requests: list[dict[str, str]] = []
        self._signing_key = RSAKey(key=_rsa_key("signing"), use="sig")
        self._signing_key.add_kid()
        # the same key id, another key: what a provider publishing the wrong keys looks like
        self._other_key = RSAKey(key=_rsa_key("other"), use="sig", kid=self._signing_key.kid)
        bundle = KeyBundle()
        bundle.append(self._signing_key)
        keyjar = KeyJar()
        keyjar.add_kb("", bundle)

        lookup = TemplateLookup(output_encoding="utf-8")
        lookup.put_string("login.mako", LOGIN_FORM)
        # The form's answer goes back to the authorization endpoint with the session cookie.
        self._login = UsernamePasswordMako(
            None, "login.mako", lookup, self.users, return_to=f"{self.issuer}/authorization"
        )
        self._login.secure = False  # plain HTTP on 127.0.0.1
        broker = AuthnBroker()
        broker.add(PASSWORD, self._login, 10, "")
        clients = {
            CLIENT_ID: {
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [(redirect_uri, None)],
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_basic",
                "client_salt": "salt",
            }
        }
        self.provider = Provider(
            self.issuer,
            create_session_db(self.issuer, "session secret", "session password"),
            clients,
            broker,
            UserInfo({login: {} for login in self.users}),
            AuthzHandling(),
            verify_client,
            "symmetric key 16",
            keyjar=keyjar,
        )
        self._login.init_srv(self.provider)
        self.provider.baseurl = self.issuer
        self.provider.jwks_uri = f"{self.issuer}/jwks"
        self.provider.capabilities["code_challenge_methods_supported"] = ["S256"]
        self._runner: web.AppRunner | None = None

    def subject(self, login: str) -> str:
        """The `sub` the provider gives `login`: pyoidc's public subject identifier, a SHA-256
        of the user id (oic.utils.sdb.SessionDB.do_sub, without a user salt)."""
        return hashlib.sha256(login.encode("utf-8")).hexdigest()

    def set_code_lifetime(self, seconds: int) -> None:
        self.provider.sdb.token_factory["code"].lifetime = seconds

    def code_expired(self, code: str) -> bool:
        return bool(self.provider.sdb.token_factory["code"].is_expired(code))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/authorization", self._authorization)
        app.router.add_post("/verify", self._verify)
        app.router.add_post("/token", self._token)
        app.router.add_get("/jwks", self._jwks)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- endpoints

    async def _discovery(self, request: web.Request) -> web.Response:
        return _answer(self.provider.providerinfo_endpoint())

    async def _authorization(self, request: web.Request) -> web.Response:
        return _answer(
            self.provider.authorization_endpoint(
                request=request.query_string, cookie=request.headers.get("Cookie")
            )
        )

    async def _verify(self, request: web.Request) -> web.Response:
        result = self.provider.verify_endpoint(
            request=await request.text(), cookie=request.headers.get("Cookie")
        )
        # the password method answers (response, whether the password was right)
        return _answer(result[0] if isinstance(result, tuple) else result)

    async def _token(self, request: web.Request) -> web.Response:
        body = await request.text()
        form = {key: values[0] for key, values in parse_qs(body).items()}
        self.token_requests.append(form)
        refused = self._refused_code(form)
        if refused is not None:
            return refused
        answer = self.provider.token_endpoint(
            request=body, authn=request.headers.get("Authorization", "")
        )
        if answer.status_code == 200 and self.id_token_claims is not None:
            tokens = json.loads(answer.message)
            tokens["id_token"] = self._signed(self.id_token_claims(_claims(tokens["id_token"])))
            return web.json_response(tokens, headers={"Cache-Control": "no-store"})
        return _answer(answer)

    async def _jwks(self, request: web.Request) -> web.Response:
        key = self._other_key if self.publish_other_key else self._signing_key
        return web.json_response({"keys": [key.serialize(private=False)]})

    # --- helpers

    def _refused_code(self, form: dict[str, str]) -> web.Response | None:
        """RFC 7636 4.6 and RFC 6749 4.1.2: invalid_grant for a code whose verifier is missing
        or wrong, or that has expired. None: pyoidc takes it from here."""
        code = form.get("code", "")
        try:
            session = self.provider.sdb[code]
        except Exception:
            return None  # an unknown code: pyoidc's own answer
        authorization = json.loads(session["authzreq"])
        challenge = authorization.get("code_challenge")
        if challenge is not None:
            verifier = form.get("code_verifier")
            method = authorization.get("code_challenge_method", "plain")
            if (
                verifier is None
                or ExtensionProvider.verify_code_challenge(verifier, challenge, method) is not True
            ):
                return _invalid_grant("PKCE verifier missing or wrong")
        if self.code_expired(code):
            return _invalid_grant("code expired")
        return None

    def _signed(self, claims: dict[str, Any]) -> str:
        return str(
            JWS(json.dumps(claims), alg="RS256", kid=self._signing_key.kid).sign_compact(
                keys=[self._signing_key]
            )
        )


@asynccontextmanager
async def running_provider(
    port: int, redirect_uri: str, users: dict[str, str] | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[OidcProvider]:
    provider = OidcProvider(port, redirect_uri, users, host)
    await provider.start()
    try:
        yield provider
    finally:
        await provider.stop()


def _answer(response: Response) -> web.Response:
    """pyoidc's WSGI-style answer as an aiohttp response."""
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in response.headers:
        headers.add(name, value)
    body = response.message or ""
    if isinstance(response, (SeeOther, Redirect)):
        headers["Location"] = str(response.message)
        body = ""
    return web.Response(
        status=response.status_code,
        body=body.encode("utf-8") if isinstance(body, str) else body,
        headers=headers,
    )


def _claims(id_token: str) -> dict[str, Any]:
    payload = id_token.split(".")[1]
    return dict(json.loads(urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _invalid_grant(description: str) -> web.Response:
    return web.json_response(
        {"error": "invalid_grant", "error_description": description}, status=400
    )
