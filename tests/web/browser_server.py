"""Fixtures for browser tests: the real app on 127.0.0.1 with loopback ICE, and Debian's chromium
driven by Playwright (never a downloaded browser).

The server's public URL is its real origin, so the Origin checks of the API and the WebSocket
hold. Every page a test opens records the requests it makes and the console errors it logs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from signaling.app import create_app
from signaling.storage.sqlite import SqliteStorage
from tests.ports import PortRange
from tests.signaling.api_server import PASSWORD, ApiServer, call, media_config, write_config

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

# More lines of the media section (indented by two spaces), e.g. a test module's ICE servers;
# the relay's ports come from tests/ports.py (the `udp_ports` fixture), so no concurrent test or
# run shares them.
MEDIA_EXTRA = ""

# Screenshots land here (git-ignored); the current ones are copied into docs/screenshots/.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}


@dataclass
class Recorded:
    """What one page did: every request URL and every console error or uncaught exception."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class WebServer:
    api: ApiServer
    browser: Browser

    @property
    def url(self) -> str:
        return self.api.url

    async def context(self, **options: Any) -> BrowserContext:
        options.setdefault("viewport", DESKTOP)
        options.setdefault("locale", "de-DE")
        options.setdefault("timezone_id", "Europe/Berlin")
        return await self.browser.new_context(**options)

    async def page(self, context: BrowserContext) -> tuple[Page, Recorded]:
        page = await context.new_page()
        recorded = Recorded()
        page.on("request", lambda request: recorded.requests.append(request.url))
        page.on(
            "console",
            lambda message: (
                recorded.errors.append(message.text) if message.type == "error" else None
            ),
        )
        page.on("pageerror", lambda error: recorded.errors.append(str(error)))
        return page, recorded

    async def signed_in_page(self, context: BrowserContext) -> tuple[Page, Recorded]:
        """A page on the dashboard, signed in as alice through the login form."""
        if await self.api.storage.get_therapist("alice") is None:
            await self.api.add_therapist("alice")
        page, recorded = await self.page(context)
        await page.goto(f"{self.url}/login")
        # By id: the form's language follows the context's locale.
        await page.locator("#username").fill("alice")
        await page.locator("#password").fill(PASSWORD)
        await page.locator("#btn-login").click()
        await page.wait_for_url(f"{self.url}/dashboard")
        return page, recorded

    async def appointment(self, starts_in: dt.timedelta) -> dict[str, Any]:
        """An appointment of alice's made through her API, with its `invite_url`."""
        if await self.api.storage.get_therapist("alice") is None:
            await self.api.add_therapist("alice")
        session, csrf = await self.api.signed_in("alice")
        starts_at = (dt.datetime.now(dt.UTC) + starts_in).replace(microsecond=0).isoformat()
        async with session:
            status, body, _ = await call(
                session,
                "POST",
                "/api/therapist/appointments",
                json={"starts_at": starts_at},
                headers={"X-CSRF-Token": csrf},
            )
        assert status == 201, body
        return body


# Playwright's expect() gives up after 5 s by default. A page reacting to a WebSocket message
# on a 2-core machine with chromium, the server and the relay in one event loop, and the other
# core busy, can take longer than that without anything being wrong; a deadline costs nothing
# while the condition comes true.
EXPECT_TIMEOUT_MS = 20_000


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One chromium per test module; each test gets fresh contexts (no shared state)."""
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="module")
async def web_server(
    tmp_path: Path, browser: Browser, udp_ports: PortRange
) -> AsyncIterator[WebServer]:
    # Bind first, so the config's public URL can name the real port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = write_config(tmp_path, public_url=url, extra=media_config(udp_ports, MEDIA_EXTRA))
    storage = await SqliteStorage.open(config.storage.sqlite_path)
    runner = web.AppRunner(create_app(config, storage), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    server = WebServer(ApiServer(url, config, storage, config.storage.sqlite_path), browser)
    try:
        yield server
    finally:
        for context in browser.contexts:
            await context.close()
        await runner.cleanup()
        await storage.close()


def foreign_requests(server: WebServer, recorded: Recorded) -> list[str]:
    """Requests that left our origin (data: and blob: URLs stay in the page)."""
    own = server.url + "/"
    return [url for url in recorded.requests if not url.startswith((own, "data:", "blob:"))]


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


async def poll(page: Page, expression: str, timeout: float = 20.0) -> bool:
    """Evaluate `expression` until it is truthy (wait_for_function would resolve at once on a
    Promise); False after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await page.evaluate(expression):
            return True
        await asyncio.sleep(0.2)
    return False
