"""A call where the client's browser may only use TURN (a clinic network that lets nothing through
but the TURN server): the server mints coturn REST credentials for it, a real coturn relays its
media, over UDP or over TLS, and both sides still see each other. With a secret coturn does not
share, the browser gets no relay.

The client's context forces `iceTransportPolicy: "relay"` (tests/web/coturn_server.py); the
therapist's connects as usual. The app is the one of `web_server` (tests/web/browser_server.py),
with coturn as its only ICE server; chromium trusts coturn's test certificate.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.ports import PortRange
from tests.web import browser_server
from tests.web.browser_server import Recorded, WebServer, poll
from tests.web.browser_server import web_server as web_server  # the fixtures, for pytest
from tests.web.coturn_server import RELAY_ONLY, Coturn
from tests.web.coturn_server import browser_trusting_coturn as browser_trusting_coturn
from tests.web.coturn_server import coturn as coturn
from tests.web.coturn_server import turn_certificate as turn_certificate
from tests.web.test_call_browser import BLUE, RED, REMOTE_COLOUR, camera, media_advances

# One event loop per module: the module shares one chromium.
pytestmark = pytest.mark.asyncio(loop_scope="module")

TTL_SECONDS = 600

# The candidate pair the peer connection sends on, by type and address.
SELECTED_PAIR = """
(async () => {
  const pc = window.sprechzimmerCall && window.sprechzimmerCall.pc;
  if (!pc) return null;
  const report = await pc.getStats();
  let pairId = null;
  report.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
  });
  const pair = pairId && report.get(pairId);
  if (!pair || pair.state !== "succeeded") return null;
  const local = report.get(pair.localCandidateId);
  const remote = report.get(pair.remoteCandidateId);
  return {
    local: local.candidateType,
    relayProtocol: local.relayProtocol || null,
    localPort: local.port,
    remote: remote.candidateType,
    remotePort: remote.port,
  };
})()
"""


async def selected_pair(page: Page, timeout: float = 20.0) -> dict[str, Any] | None:
    """The pair the page's peer connection sends on, once it has one (None after `timeout`).

    Media may already have flowed while the page's connection is being replaced (an H.264 switch
    offers again on a fresh peer connection, codec_choice.py; call.js restarts one whose media
    failed or stalled): its stats name no succeeded pair until its ICE is through. Seen once in
    scripts/flake-loop, under the CPU hog, right after an H.264 switch."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        pair = await page.evaluate(SELECTED_PAIR)
        if pair is not None or loop.time() > deadline:
            return pair
        await asyncio.sleep(0.2)


@pytest.fixture
def turn_transport() -> str:
    """How the browser reaches coturn: `udp`, unless a test parametrizes `tls`."""
    return "udp"


@pytest.fixture
def app_turn_secret(coturn: Coturn) -> str:
    """The app's `media.turn_secret`: coturn's, unless a test parametrizes another."""
    return coturn.secret


@pytest.fixture(autouse=True)
def app_hands_out_coturn(
    coturn: Coturn, turn_transport: str, app_turn_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Autouse fixtures run first, so `web_server` writes its config from this.
    monkeypatch.setattr(
        browser_server,
        "MEDIA_EXTRA",
        f"""  ice_servers:
    - urls: ["{coturn.url(turn_transport)}"]
  turn_secret: "{app_turn_secret}"
  turn_credential_ttl_seconds: {TTL_SECONDS}
""",
    )


@pytest.mark.parametrize("turn_transport", ["udp", "tls"])
async def test_a_relay_only_client_sees_and_is_seen_through_coturn(
    web_server: WebServer, coturn: Coturn, turn_transport: str, udp_ports: PortRange
):
    appointment = await web_server.appointment(dt.timedelta(minutes=5))

    therapist_context = await web_server.context()
    await therapist_context.add_init_script(camera(RED))
    therapist, therapist_log = await web_server.signed_in_page(therapist_context)
    await therapist.goto(f"{web_server.url}/call/{appointment['id']}")
    client, client_log = await _relay_only_client(web_server, appointment)

    # Each side decodes the other's advancing video (and hears it), as in a direct call.
    await media_advances(client)
    await media_advances(therapist)
    assert await poll(
        client, f"(() => {{ const c = {REMOTE_COLOUR}; return c[0] > c[2] + 80; }})()"
    )
    assert await poll(
        therapist, f"(() => {{ const c = {REMOTE_COLOUR}; return c[2] > c[0] + 80; }})()"
    )

    # The client's media leaves through a coturn relay port to the relay; the therapist's not.
    pair = await selected_pair(client)
    assert pair is not None and pair["local"] == "relay", pair
    assert pair["relayProtocol"] == turn_transport, pair
    assert coturn.relay_ports.low <= pair["localPort"] <= coturn.relay_ports.high, pair
    assert udp_ports.low <= pair["remotePort"] <= udp_ports.high, pair  # the relay's own
    therapist_pair = await selected_pair(therapist)
    assert therapist_pair is not None and therapist_pair["local"] != "relay", therapist_pair

    # The client got REST credentials for this call, and coturn allocated under them.
    (server,) = (await client.evaluate("window.turnSeen.configs"))[-1]["iceServers"]
    assert server["urls"] == [coturn.url(turn_transport)]
    assert re.fullmatch(r"\d+:[0-9a-f]{16}", server["username"]), server["username"]
    expiry = int(server["username"].partition(":")[0])
    assert abs(expiry - (time.time() + TTL_SECONDS)) < 60
    assert coturn.allocations(server["username"]) >= 1, coturn.log()
    if turn_transport == "tls":
        assert re.search(rf"username=<{server['username']}>.*method=TLSv1\.[23]", coturn.log())

    assert therapist_log.errors == []
    assert client_log.errors == []


@pytest.mark.parametrize("app_turn_secret", ["not-coturns-secret"])
async def test_a_relay_only_client_gets_no_relay_when_the_secrets_differ(
    web_server: WebServer, coturn: Coturn
):
    appointment = await web_server.appointment(dt.timedelta(minutes=5))
    client, _ = await _relay_only_client(web_server, appointment)

    assert await poll(client, "window.turnSeen.configs.length > 0", 10)
    gathered = "window.sprechzimmerCall.pc.iceGatheringState === 'complete'"
    assert await poll(client, gathered, 10), await client.evaluate("window.turnSeen")
    seen = await client.evaluate("window.turnSeen")
    assert "relay" not in seen["candidates"], seen
    assert {error["code"] for error in seen["errors"]} == {401}, seen  # coturn: Unauthorized
    assert await client.evaluate("window.sprechzimmerCall.pc.connectionState") != "connected"
    (server,) = seen["configs"][-1]["iceServers"]
    assert coturn.allocations(server["username"]) == 0, coturn.log()


async def _relay_only_client(
    server: WebServer, appointment: dict[str, Any]
) -> tuple[Page, Recorded]:
    """The client's page, relay-only, in the call after consenting as in test_call_browser."""
    context: BrowserContext = await server.context()
    await context.add_init_script(camera(BLUE))
    await context.add_init_script(RELAY_ONLY)
    client, recorded = await server.page(context)
    await client.goto(appointment["invite_url"])
    await client.get_by_label("Ich habe die Nutzungsbedingungen gelesen").check()
    await client.get_by_label("Ich willige ein").check()
    await client.get_by_role("button", name="Beitreten").click()
    await expect(client.locator("#remote-video")).to_be_attached()
    return client, recorded
