"""Single sign-on through the portal's OpenID Connect provider (docs/operating.md).

``GET /login/sso`` starts: a fresh `PendingSignIn` sealed into a cookie, and a redirect to the
provider's authorization endpoint (authorization code flow with PKCE). The provider sends the
browser back to ``GET /login/sso/callback`` with a code; the callback checks the state against
the cookie (constant time), exchanges the code, checks the ID token, and maps the configured
claim (`oidc.claim`) to a therapist's external id. An active therapist gets a new session, the
same as a password sign-in; anyone else gets no session and one of three pages, reached by a
redirect so that a reload or the language switch never repeats a used code:

- ``/login/sso/refused`` (403): no active account for this portal account (unknown or disabled);
- ``/login/sso/failed`` (400): this sign-in did not complete (wrong or old state, the provider
  refused the code or the person cancelled there) -- starting over helps;
- ``/login/sso/unavailable`` (502): the provider cannot be reached or its answer does not hold.

The local second factor (`auth.require_totp`, the security page) belongs to the password: the
portal's provider is responsible for the second factor of its own sign-ins.

Callbacks are throttled like password sign-ins: counted on arrival, per address and per pending
sign-in (which plays the account's part, since the account is unknown until the provider
answers), with the `limits.login_*` numbers; only a sign-in that ends in a session gives its
attempt back. The counts are kept in this process, or in a cluster in Redis (`login-sso:` keys,
signaling/cluster/login_attempts.py), so that callbacks spread over nodes count together; with
Redis out of reach the callback ends on the unavailable page rather than count nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time

from aiohttp import web

from signaling.client_address import client_address
from signaling.config import Config
from signaling.credentials import load_or_create_session_secret
from signaling.http_errors import ApiError
from signaling.login_sessions import signed_in_redirect
from signaling.login_throttle import Attempt, LoginAttempts, local_login_attempts
from signaling.logs import LOGGER_NAME, log_event, render_ip
from signaling.oidc_client import CodeRejected, OidcClient, ProviderUnavailable
from signaling.oidc_pending import PENDING_LIFETIME_SECONDS, PendingSignIn, PendingSignInBox
from signaling.routes_integration import EXTERNAL_ID
from signaling.routes_pages import NO_STORE, Pages
from signaling.storage import Storage

__all__ = ["CALLBACK_PATH", "COOKIE_NAME", "START_PATH", "SingleSignOn", "external_id_of"]

START_PATH = "/login/sso"
CALLBACK_PATH = "/login/sso/callback"
COOKIE_NAME = "sprechzimmer_sso"
AFTER_SIGN_IN = "/dashboard"

# outcome -> (page, status)
OUTCOMES = {
    "refused": ("sso-refused", 403),
    "failed": ("sso-failed", 400),
    "unavailable": ("sso-unavailable", 502),
}

# An authorization code is a few hundred characters at most; a longer one is not a code.
_MAX_CODE_LENGTH = 2048
# OAuth error codes are short lower-case words (RFC 6749, 4.1.2.1); others are logged as "other".
_ERROR_CODE = re.compile(r"^[a-z_]{1,40}$")

logger = logging.getLogger(LOGGER_NAME)


class SingleSignOn:
    def __init__(
        self,
        config: Config,
        storage: Storage,
        pages: Pages,
        session_secret: str = "",
        attempts: LoginAttempts | None = None,
    ) -> None:
        """`attempts`: where callbacks are counted; this process alone unless given (a cluster
        passes its Redis counts, so that callbacks spread over nodes count together)."""
        self._config = config
        self._storage = storage
        self._pages = pages
        self._client: OidcClient | None = None
        if config.oidc.enabled:
            self._client = OidcClient(config.oidc, f"{config.server.public_url}{CALLBACK_PATH}")
            # Without a secret (tests that build the app directly) the data directory's file
            # is used, as `serve` does.
            self._box = PendingSignInBox(
                session_secret or load_or_create_session_secret(config.storage.data_dir)
            )
            self._throttle = attempts or local_login_attempts(config.limits)

    def register(self, router: web.UrlDispatcher) -> None:
        # The login page asks whether to offer the portal's button; the answer exists either way.
        router.add_get("/api/therapist/login/methods", self.methods)
        if self._client is None:
            return
        router.add_get(START_PATH, self.start)
        router.add_get(CALLBACK_PATH, self.callback)
        for outcome, (page, status) in OUTCOMES.items():
            router.add_get(f"{START_PATH}/{outcome}", self._outcome_page(page, status))

    async def methods(self, request: web.Request) -> web.Response:
        return web.json_response({"password": True, "sso": self._client is not None})

    async def start(self, request: web.Request) -> web.Response:
        assert self._client is not None
        pending = PendingSignIn.new(time.time())
        try:
            url = await self._client.authorization_url(pending)
        except ProviderUnavailable as exc:
            log_event(logger, "login_sso_unavailable", logging.WARNING, reason=exc.reason)
            # here, not by redirect: a reload (or the language switch) is a new attempt
            page, status = OUTCOMES["unavailable"]
            return self._pages.render(request, page, NO_STORE, status=status)
        response = web.Response(status=302, headers={"Location": url})
        response.set_cookie(
            COOKIE_NAME,
            self._box.seal(pending),
            path=START_PATH,
            max_age=PENDING_LIFETIME_SECONDS,
            httponly=True,
            samesite="Lax",
            secure=self._secure,
        )
        return response

    async def callback(self, request: web.Request) -> web.Response:
        assert self._client is not None
        pending = self._box.open(request.cookies.get(COOKIE_NAME), time.time())
        state = request.query.get("state", "")
        if pending is None or not hmac.compare_digest(
            state.encode("utf-8"), pending.state.encode("ascii")
        ):
            # missing, old or another start's: no login CSRF, no replay of a stolen answer
            return self._failed("state")
        error = request.query.get("error")
        if error is not None:
            # the person cancelled at the portal, or it refused this client
            return self._failed(f"provider_{error if _ERROR_CODE.match(error) else 'other'}")
        issuer = request.query.get("iss")
        if issuer is not None and issuer.rstrip("/") != self._config.oidc.issuer:
            # RFC 9207: an answer from another provider (mix-up)
            return self._failed("issuer")
        code = request.query.get("code", "")
        if not code or len(code) > _MAX_CODE_LENGTH:
            return self._failed("code_missing")

        address = client_address(request, self._config.server.trusted_proxies)
        ip = render_ip(address, self._config.privacy.log_ip)
        # the pending sign-in by a hash: the state is a secret of this browser's
        flow = "sso:" + hashlib.sha256(pending.state.encode("ascii")).hexdigest()[:32]
        try:
            attempt = await self._throttle.begin(flow, address)
        except ApiError:  # the cluster's counts are out of reach (Redis): never count nothing
            log_event(logger, "login_sso_unavailable", logging.WARNING, reason="throttle", ip=ip)
            return self._outcome("unavailable")
        if not isinstance(attempt, Attempt):
            log_event(logger, "login_throttled", logging.WARNING, ip=ip, single_sign_on=True)
            page, _ = OUTCOMES["failed"]
            response = self._pages.render(request, page, NO_STORE, status=429)
            response.headers["Retry-After"] = str(attempt)
            return response

        try:
            claims = await self._client.redeem(code, pending)
        except CodeRejected as exc:
            return self._failed(f"code_{exc.reason}", ip)
        except ProviderUnavailable as exc:
            log_event(logger, "login_sso_unavailable", logging.WARNING, reason=exc.reason, ip=ip)
            return self._outcome("unavailable")

        external_id = external_id_of(claims, self._config.oidc.claim)
        therapist = (
            await self._storage.get_therapist_by_external_id(external_id)
            if external_id is not None
            else None
        )
        if therapist is None:
            # never the claim's value: it names a person's portal account
            log_event(logger, "login_refused_unknown_subject", logging.WARNING, ip=ip)
            return self._outcome("refused")
        if therapist.disabled:
            log_event(logger, "login_refused_disabled", logging.WARNING, therapist_id=therapist.id)
            return self._outcome("refused")

        await self._throttle.succeeded(attempt)
        log_event(logger, "login", therapist_id=therapist.id, ip=ip, single_sign_on=True)
        response = await signed_in_redirect(self._storage, self._config, therapist, AFTER_SIGN_IN)
        self._forget_pending(response)
        return response

    # --- helpers

    def _outcome_page(self, page: str, status: int):  # type: ignore[no-untyped-def]
        async def handler(request: web.Request) -> web.Response:
            return self._pages.render(request, page, NO_STORE, status=status)

        return handler

    def _failed(self, reason: str, ip: str | None = None) -> web.Response:
        fields = {"reason": reason} if ip is None else {"reason": reason, "ip": ip}
        log_event(logger, "login_sso_failed", logging.WARNING, **fields)
        return self._outcome("failed")

    def _outcome(self, outcome: str) -> web.Response:
        """A redirect to the outcome's page; the pending sign-in is used up either way."""
        response = web.Response(status=303, headers={"Location": f"{START_PATH}/{outcome}"})
        self._forget_pending(response)
        return response

    def _forget_pending(self, response: web.Response) -> None:
        response.del_cookie(COOKIE_NAME, path=START_PATH, secure=self._secure, samesite="Lax")

    @property
    def _secure(self) -> bool:
        # as the session cookie: TLS may end at a reverse proxy
        return self._config.server.tls or self._config.server.public_url.startswith("https://")


def external_id_of(claims: dict[str, object], claim: str) -> str | None:
    """The portal's account id in the ID token's `claim` (`oidc.claim`), or None when it is
    missing or could never have been provisioned."""
    value = claims.get(claim)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a numeric account id is an id all the same
    if isinstance(value, str) and EXTERNAL_ID.match(value):
        return value
    return None
