"""Login throttling holds across nodes: attempts spread over two nodes sharing one Redis count
together, with the same semantics as one node's (counted on arrival, a correct password gives the
account a fresh start); the same for the second factor's code step, which refuses to check codes
while Redis is away rather than count nothing, and for the portal's sign-in callbacks."""

from __future__ import annotations

import html
import re
import secrets
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from tests.cluster.nodes import node
from tests.oidc_provider import USER_PASSWORD, running_provider
from tests.redis_server import RedisServer
from tests.signaling.api_server import PASSWORD, PUBLIC_URL, ApiServer, call
from tests.signaling.sso_setup import PORTAL_USERS, STRANGER, oidc_config
from tests.signaling.test_second_factor import enrol, later_code

LIMITS = f"""limits:
  login_attempts_per_account: 3
  login_attempts_per_address: 50
  login_window_seconds: 600
server:
  public_url: {PUBLIC_URL}
"""


async def login(api: ApiServer, username: str, password: str):
    async with api.client(Origin=PUBLIC_URL) as client:
        return await call(
            client,
            "POST",
            "/api/therapist/login",
            json={"username": username, "password": password},
        )


async def test_failed_attempts_on_two_nodes_count_together(
    shared_redis: RedisServer, cluster_config
):
    async with (
        node(cluster_config(shared_redis, "node-a", LIMITS)) as a,
        node(cluster_config(shared_redis, "node-b", LIMITS)) as b,
    ):
        await a.api.add_therapist("alice")
        # three wrong passwords, spread: each node alone has seen at most two
        for api in (a.api, b.api, a.api):
            assert (await login(api, "alice", "wrong"))[0] == 401
        status, body, headers = await login(b.api, "alice", "wrong")
        assert (status, body["error"]["code"]) == (429, "rate_limited"), body
        assert 0 < int(headers["Retry-After"]) <= 600
        # the right password too, on either node, until the window has passed
        assert (await login(a.api, "alice", PASSWORD))[0] == 429


async def test_a_correct_password_on_one_node_clears_the_accounts_count_on_the_other(
    shared_redis: RedisServer, cluster_config
):
    async with (
        node(cluster_config(shared_redis, "node-a", LIMITS)) as a,
        node(cluster_config(shared_redis, "node-b", LIMITS)) as b,
    ):
        await a.api.add_therapist("alice")
        for _ in range(2):
            assert (await login(a.api, "alice", "wrong"))[0] == 401
        assert (await login(b.api, "alice", PASSWORD))[0] == 200
        for _ in range(3):
            assert (await login(a.api, "alice", "wrong"))[0] == 401
        assert (await login(b.api, "alice", "wrong"))[0] == 429


async def code_step(api: ApiServer, ticket: str, code: str):
    async with api.client(Origin=PUBLIC_URL) as client:
        return await call(
            client, "POST", "/api/therapist/login/code", json={"ticket": ticket, "code": code}
        )


async def ticket_for(api: ApiServer) -> str:
    status, body, _ = await login(api, "alice", PASSWORD)
    assert (status, body.get("second_factor")) == (200, "code"), body
    return body["ticket"]


async def test_wrong_codes_on_two_nodes_count_together(shared_redis: RedisServer, cluster_config):
    async with (
        node(cluster_config(shared_redis, "node-a", LIMITS)) as a,
        node(cluster_config(shared_redis, "node-b", LIMITS)) as b,
    ):
        await a.api.add_therapist("alice")
        secret = (await enrol(a.api)).secret
        ticket = await ticket_for(b.api)
        wrong = f"{(int(later_code(secret)) + 1) % 1_000_000:06d}"
        # three wrong codes, spread: each node alone has seen at most two
        for api in (a.api, b.api, a.api):
            status, body, _ = await code_step(api, ticket, wrong)
            assert (status, body["error"]["code"]) == (401, "invalid_code"), body
        status, body, headers = await code_step(b.api, ticket, later_code(secret))
        assert (status, body["error"]["code"]) == (429, "rate_limited"), body
        assert 0 < int(headers["Retry-After"]) <= 600


async def test_the_code_step_is_refused_while_redis_is_away(
    private_redis: RedisServer, cluster_config
):
    config = cluster_config(
        private_redis, "node-a", LIMITS, heartbeat_interval_seconds=0.5, heartbeat_ttl_seconds=2
    )
    async with node(config) as a:
        await a.api.add_therapist("alice")
        secret = (await enrol(a.api)).secret
        ticket = await ticket_for(a.api)
        private_redis.stop()
        status, body, headers = await code_step(a.api, ticket, later_code(secret))
        assert (status, body["error"]["code"]) == (503, "storage_unavailable"), body
        assert int(headers["Retry-After"]) > 0


# --- single sign-on: the portal's callbacks count across nodes too


async def test_portal_callbacks_on_two_nodes_count_together(
    shared_redis: RedisServer, cluster_config, tcp_port: int
):
    """A pending sign-in's callback replayed on alternating nodes: with per-node counts each
    node would have let a third try through; the shared counts refuse it (429)."""
    public = "http://praxis.example:8080"  # what the provider has registered; the test rewrites
    extra = (
        oidc_config(f"http://127.0.0.1:{tcp_port}")
        + f"server:\n  public_url: {public}\n  session_secret: {secrets.token_hex(32)}\n"
        + "limits:\n  login_attempts_per_account: 2\n  login_attempts_per_address: 50\n"
    )
    async with (
        running_provider(tcp_port, f"{public}/login/sso/callback", PORTAL_USERS),
        node(cluster_config(shared_redis, "node-a", extra)) as a,
        node(cluster_config(shared_redis, "node-b", extra)) as b,
    ):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            query = await portal_callback_query(browser, a.api.url, f"http://127.0.0.1:{tcp_port}")
            pending = {c.key: c.value for c in browser.cookie_jar if c.key == "sprechzimmer_sso"}
        assert pending, "the start left no pending sign-in"
        statuses = []
        for api in (a.api, b.api, a.api):
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as replay:
                replay.cookie_jar.update_cookies(pending, response_url=URL(f"{api.url}/login/sso"))
                url = f"{api.url}/login/sso/callback?{query}"
                async with replay.get(url, allow_redirects=False) as response:
                    statuses.append(response.status)
        # the stranger's own callback is refused (303 to the refused page), the replays fail at
        # the provider (a used code, 303 to the failed page); the third is over the limit
        assert statuses == [303, 303, 429], statuses


async def portal_callback_query(browser: aiohttp.ClientSession, app_url: str, issuer: str) -> str:
    """Start at the node, sign in on the provider's form as a portal account no therapist has,
    and return the callback's query the provider sends the browser back with."""
    async with browser.get(f"{app_url}/login/sso", allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        location = response.headers["Location"]
    async with browser.get(location) as response:
        (form_query,) = re.findall(r'name="query" value="([^"]*)"', await response.text())
    async with browser.post(
        f"{issuer}/verify",
        data={"query": html.unescape(form_query), "login": STRANGER, "password": USER_PASSWORD},
        allow_redirects=False,
    ) as response:
        assert response.status == 303, await response.text()
        location = response.headers["Location"]
    async with browser.get(location, allow_redirects=False) as response:
        assert response.status == 303, await response.text()
        return urlsplit(response.headers["Location"]).query
