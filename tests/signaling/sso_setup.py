"""Fixtures for the single sign-on tests: the app with `oidc` configured and a real OpenID
Connect provider (tests/oidc_provider.py), each on its own port on 127.0.0.1, and a browser-like
client that goes through the provider's login form.

Import the fixtures into a test module with `from tests.signaling.sso_setup import ...`.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from signaling.app import create_app
from signaling.storage import Therapist
from signaling.storage.sqlite import SqliteStorage
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, USER_PASSWORD, OidcProvider
from tests.oidc_provider import running_provider as running_provider
from tests.ports import reserve_ports
from tests.privacy_canaries import remember
from tests.signaling.api_server import _PASSWORD_HASH, ApiServer, write_config

# Portal accounts: alice and the disabled dora are provisioned here, the stranger is not.
ALICE, DORA, STRANGER = "alice.portal", "dora.portal", "stranger.portal"
PORTAL_USERS = {login: USER_PASSWORD for login in (ALICE, DORA, STRANGER)}

_QUERY_FIELD = re.compile(r'name="query" value="([^"]*)"')


@dataclass
class SsoSetup:
    api: ApiServer
    provider: OidcProvider

    @property
    def url(self) -> str:
        return self.api.url

    def url_of(self, path: str = "/") -> URL:
        """The app's URL for `path`, for putting a cookie into a client's jar."""
        return URL(f"{self.url}{path}")

    def client(self) -> aiohttp.ClientSession:
        # unsafe=True: the default jar ignores cookies from IP-address hosts like 127.0.0.1.
        # One jar for both hosts' cookies, as a browser has.
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def provision(self, login: str, username: str, disabled: bool = False) -> Therapist:
        """The therapist the portal's account `login` maps to, as provisioning makes it."""
        subject = self.provider.subject(login)
        remember(subject)
        therapist, _ = await self.api.storage.provision_therapist(
            subject, username, None, _PASSWORD_HASH
        )
        if disabled:
            await self.api.storage.set_therapist_disabled(username, True)
        return therapist

    async def start(self, client: aiohttp.ClientSession) -> str:
        """GET /login/sso; the provider's authorization URL it redirects to."""
        async with client.get(f"{self.url}/login/sso", allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            return response.headers["Location"]

    async def through_the_portal(
        self, client: aiohttp.ClientSession, login: str, authorization_url: str | None = None
    ) -> str:
        """Start (unless given the provider's URL), sign in on the provider's form as `login`,
        and return the callback URL the provider sends the browser to, not yet followed."""
        location = authorization_url or await self.start(client)
        async with client.get(location) as response:
            assert response.status == 200, await response.text()
            (query,) = _QUERY_FIELD.findall(await response.text())
        async with client.post(
            f"{self.provider.issuer}/verify",
            data={"query": html.unescape(query), "login": login, "password": USER_PASSWORD},
            allow_redirects=False,
        ) as response:
            assert response.status == 303, await response.text()
            location = response.headers["Location"]
        async with client.get(location, allow_redirects=False) as response:
            assert response.status == 303, await response.text()
            callback = response.headers["Location"]
        assert callback.startswith(f"{self.url}/login/sso/callback?")
        answer = parse_qs(urlsplit(callback).query)
        remember(*answer.get("code", []), *answer.get("state", []))
        return callback

    async def signed_in(self, client: aiohttp.ClientSession, login: str) -> aiohttp.ClientResponse:
        """The whole sign-in; the callback's answer (not followed)."""
        callback = await self.through_the_portal(client, login)
        async with client.get(callback, allow_redirects=False) as response:
            await response.read()
        remember(*(c.value for c in client.cookie_jar))
        return response


def oidc_config(issuer: str, claim: str = "sub") -> str:
    return (
        f"oidc:\n  issuer: {issuer}\n  client_id: {CLIENT_ID}\n"
        f"  client_secret: {CLIENT_SECRET}\n  claim: {claim}\n"
    )


@asynccontextmanager
async def sso_serving(
    tmp_path: Path,
    provider_port: int,
    extra: str = "",
    claim: str = "sub",
    provider_host: str = "127.0.0.1",
) -> AsyncIterator[SsoSetup]:
    """The app on a port of its own (so that its public URL, and the redirect URI registered at
    the provider, are real) and the provider on `provider_port`."""
    with reserve_ports(1, tcp=True) as ports:
        url = f"http://127.0.0.1:{ports.low}"
        issuer = f"http://{provider_host}:{provider_port}"
        config = write_config(tmp_path, public_url=url, extra=oidc_config(issuer, claim) + extra)
        storage = await SqliteStorage.open(config.storage.sqlite_path)
        try:
            async with running_provider(
                provider_port, f"{url}/login/sso/callback", PORTAL_USERS, provider_host
            ) as provider:
                app = create_app(config, storage)
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                try:
                    await web.TCPSite(runner, "127.0.0.1", ports.low).start()
                    api = ApiServer(url, config, storage, config.storage.sqlite_path, app)
                    yield SsoSetup(api, provider)
                finally:
                    await runner.cleanup()
        finally:
            await storage.close()


@pytest.fixture
async def sso(tmp_path: Path, tcp_port: int) -> AsyncIterator[SsoSetup]:
    async with sso_serving(tmp_path, tcp_port) as setup:
        yield setup
