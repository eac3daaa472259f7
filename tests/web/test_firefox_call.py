"""Calls between Debian's firefox-esr (over WebDriver BiDi) and chromium, both ways round: each
side decodes the other's picture (its colour, not its own) and receives its audio through the
relay, both frame-encrypt in a worker behind RTCRtpScriptTransform and show the same confirmed
safety code, the chat goes both ways, a fresh peer connection (reconnect) brings media back,
and the therapist's "end" reaches both.

Each camera is the canvas of test_call_browser (red therapist, blue client); the microphones
are the browsers' own fakes.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.browser_server import WebServer
from tests.web.browser_server import browser as browser  # the fixtures, for pytest
from tests.web.browser_server import web_server as web_server
from tests.web.call_matrix import (
    both_see_the_end,
    both_verified_with_one_code,
    chat_both_ways,
    chromium_client_joins,
    chromium_therapist_opens_call,
    each_sees_and_hears_the_other,
    firefox_client_joins,
    firefox_therapist_opens_call,
    reconnect,
)
from tests.web.firefox_bidi import firefox as firefox

# One event loop per module: the module shares one chromium and one firefox.
pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_firefox_client_calls_a_chromium_therapist(web_server: WebServer, firefox: Any):
    therapist, link, logs = await chromium_therapist_opens_call(web_server)
    client, client_log = await firefox_client_joins(firefox, link)

    await both_verified_with_one_code(therapist, client)
    await each_sees_and_hears_the_other(therapist, client)
    await client.screenshot("firefox-client.png")
    await chat_both_ways(therapist, client)
    await reconnect(client, therapist)
    await both_see_the_end(therapist, client)
    for name, log in zip(("dashboard", "therapist", "client"), [*logs, client_log], strict=True):
        assert log.errors == [], name


async def test_a_firefox_therapist_calls_a_chromium_client(web_server: WebServer, firefox: Any):
    therapist, link, logs = await firefox_therapist_opens_call(web_server, firefox)
    client, client_log = await chromium_client_joins(web_server, link)

    await both_verified_with_one_code(therapist, client)
    await each_sees_and_hears_the_other(therapist, client)
    await therapist.screenshot("firefox-therapist.png")
    await chat_both_ways(therapist, client)
    await reconnect(therapist, client)
    await both_see_the_end(therapist, client)
    for name, log in zip(("dashboard", "therapist", "client"), [*logs, client_log], strict=True):
        assert log.errors == [], name
