"""The call's state machine (call.js PHASES) and the one reconnecting socket (socket.js), run in
real chromium against the real server."""

from __future__ import annotations

import pytest
from playwright.async_api import Page

from tests.web.browser_server import WebServer, poll
from tests.web.browser_server import browser as browser  # the fixtures, for pytest
from tests.web.browser_server import web_server as web_server

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def module_page(web_server: WebServer) -> tuple[Page, list[str]]:
    """A page of our origin (the terms) from which the modules can be imported."""
    page, recorded = await web_server.page(await web_server.context())
    await page.goto(f"{web_server.url}/terms")
    return page, recorded.errors


async def test_a_call_session_ignores_a_move_its_table_does_not_allow(web_server: WebServer):
    page, errors = await module_page(web_server)
    result = await page.evaluate(
        """async () => {
          const { CallSession, PHASES } = await import("/static/js/call.js");
          const session = new CallSession({ appointment: 1 }, new MediaStream(), { role: "therapist" });
          const seen = [];
          session.addEventListener("phase", (event) => seen.push(`${event.detail.from}>${event.detail.to}`));
          const early = session.moveTo("connected");  // not seated yet: refused
          const after = session.phase;
          const joining = session.moveTo("joining");
          session.leave();  // to "left", which is final
          const late = session.moveTo("connecting");
          return { early, after, joining, late, phase: session.phase, seen,
                   ignored: session.ignoredMoves, done: session.done,
                   targets: Object.values(PHASES).flat().every((to) => to in PHASES) };
        }"""
    )
    assert result["early"] is False and result["after"] == "idle"
    assert result["joining"] is True
    assert result["late"] is False and result["phase"] == "left" and result["done"] is True
    assert result["seen"] == ["idle>joining", "joining>left"]
    assert result["ignored"] == 2
    assert result["targets"], "a move in PHASES leads to a phase that is not in the table"
    assert not errors


async def test_the_socket_opens_again_after_a_drop_with_back_off(web_server: WebServer):
    page, errors = await module_page(web_server)
    await page.evaluate(
        """async () => {
          const { ReconnectingSocket } = await import("/static/js/socket.js");
          const socket = new ReconnectingSocket();
          window.probe = { opens: 0, dropped: [], closed: [] };
          socket.addEventListener("open", () => {
            window.probe.opens++;
            // A code the server does not treat as final: the page dropped its connection.
            if (window.probe.opens === 1) socket.socket.close(4000);
          });
          socket.addEventListener("dropped", (event) => window.probe.dropped.push(event.detail));
          socket.addEventListener("closed", (event) => window.probe.closed.push(event.detail));
          window.probeSocket = socket;
          socket.open();
        }"""
    )
    assert await poll(page, "window.probe.opens === 2", timeout=20), (
        f"the socket did not open again after the drop: {await page.evaluate('window.probe')}"
    )
    probe = await page.evaluate("window.probe")
    assert [d["delayMs"] for d in probe["dropped"]] == [1000]
    assert probe["closed"] == []
    await page.evaluate("window.probeSocket.close()")
    assert not errors


async def test_the_socket_stops_at_a_final_close_code(web_server: WebServer):
    page, errors = await module_page(web_server)
    await page.evaluate(
        """async () => {
          const { ReconnectingSocket } = await import("/static/js/socket.js");
          const { CLOSE_UNAUTHORIZED } = await import("/static/js/protocol.js");
          const socket = new ReconnectingSocket();
          window.probe = { opens: 0, dropped: 0, closed: [], messages: [], expected: CLOSE_UNAUTHORIZED };
          // Nobody is signed in on this page: the server refuses `watch` and closes with 4001.
          socket.addEventListener("open", () => { window.probe.opens++; socket.send({ type: "watch" }); });
          socket.addEventListener("message", (event) => window.probe.messages.push(event.detail.code));
          socket.addEventListener("dropped", () => window.probe.dropped++);
          socket.addEventListener("closed", (event) => window.probe.closed.push(event.detail.code));
          window.probeSocket = socket;
          socket.open();
        }"""
    )
    assert await poll(page, "window.probe.closed.length === 1", timeout=20), (
        f"the socket never reported the final close: {await page.evaluate('window.probe')}"
    )
    probe = await page.evaluate("window.probe")
    assert probe["closed"] == [probe["expected"]]
    assert probe["messages"] == ["unauthorized"]
    # Final means no new try: nothing is scheduled, and the socket says so.
    assert probe["dropped"] == 0 and probe["opens"] == 1
    assert await page.evaluate("window.probeSocket.stopped && window.probeSocket.socket === null")
    assert not errors
