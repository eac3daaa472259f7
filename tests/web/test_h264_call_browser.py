"""Two chromium browsers end up on H.264 through the relay (sfu/codec_choice.py): the first is
answered with VP8 while alone, the second with H.264 once both are known to share it, and the
first page offers again when signaling says `renegotiate`. End-to-end encrypted (the worker's
H.264 rule), confirmed with one safety code, picture and sound both ways."""

from __future__ import annotations

import pytest

from tests.web.browser_server import WebServer
from tests.web.browser_server import browser as browser  # the fixtures, for pytest
from tests.web.browser_server import web_server as web_server
from tests.web.call_matrix import (
    both_verified_with_one_code,
    chromium_client_joins,
    chromium_therapist_opens_call,
    each_sees_and_hears_the_other,
    until,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The codec of what this page decodes and of what it sends, from its own getStats().
CODECS = """
(async () => {
  const report = await window.sprechzimmerCall.pc.getStats();
  const found = { inbound: null, outbound: null };
  report.forEach((s) => {
    if (s.kind !== "video" || !s.codecId) return;
    if (s.type === "inbound-rtp" && (s.framesDecoded || 0) > 0) found.inbound = report.get(s.codecId)?.mimeType;
    if (s.type === "outbound-rtp" && (s.framesEncoded || 0) > 0) found.outbound = report.get(s.codecId)?.mimeType;
  });
  return found;
})()
"""


async def test_two_chromiums_end_on_h264_with_e2ee_and_video_both_ways(web_server: WebServer):
    therapist, link, logs = await chromium_therapist_opens_call(web_server)
    await until(
        therapist,
        "window.sprechzimmerCall && window.sprechzimmerCall.hasLeg",
        "the therapist's page got no answer from the relay",
    )
    client, client_log = await chromium_client_joins(web_server, link)
    await until(
        therapist,
        "window.sprechzimmerCall.renegotiations === 1",
        "the therapist's page was not asked to offer again",
    )
    for page, who in ((therapist, "therapist"), (client, "client")):
        await until(
            page,
            f"{CODECS}.then((c) => c.inbound === 'video/H264' && c.outbound === 'video/H264')",
            f"the {who} does not send and decode H.264",
            timeout=30,
        )
    await both_verified_with_one_code(therapist, client)
    await each_sees_and_hears_the_other(therapist, client)
    assert await client.evaluate("window.sprechzimmerCall.renegotiations || 0") == 0
    for log in [*logs, client_log]:
        assert log.errors == []
