"""Debian's firefox-esr for the browser tests, driven over WebDriver BiDi.

Firefox speaks WebDriver BiDi itself, so no geckodriver and no browser download is needed.
The client is puppeteer-core (tests/web/bidi/, installed by `make firefox` with `npm ci` from
the committed lock): the Chrome team keeps it, Mozilla co-develops its BiDi mode and runs its
tests in Firefox's own CI, so it follows what firefox-esr ships. (Playwright's "firefox" is a
patched build of its own and cannot drive firefox-esr; Selenium needs geckodriver.) A small
node process (bidi/driver.mjs) takes one JSON command a line; this module wraps it in a page
object with the few methods the tests use, so a test drives Firefox and Playwright's chromium
side by side in one event loop, next to the real server.

Fake devices as in chromium: Firefox's own fake camera and microphone, no permission prompt,
loopback ICE candidates allowed (the relay listens on 127.0.0.1) and plain IP host candidates
instead of mDNS names.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.web.browser_server import DESKTOP, SCREENSHOTS, Recorded

FIREFOX = "/usr/bin/firefox-esr"
DRIVER_DIR = Path(__file__).resolve().parent / "bidi"
DRIVER = DRIVER_DIR / "driver.mjs"

FIREFOX_PREFS: dict[str, Any] = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.autoplay.default": 0,  # allowed, as with chromium's headless autoplay
    "media.autoplay.blocking_policy": 0,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "intl.accept_languages": "de-DE",
    "intl.locale.requested": "de-DE",
    # no first-run pages, updates or telemetry traffic during a test
    "browser.shell.checkDefaultBrowser": False,
    "app.update.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
}

# A command of the driver (a navigation, a click) on a loaded 2-core machine: generous, since
# a deadline costs nothing while the command succeeds.
COMMAND_TIMEOUT = 60.0
ACTION_TIMEOUT_MS = 20_000


def missing() -> str | None:
    """Why the Firefox tests cannot run here, or None."""
    if not os.access(FIREFOX, os.X_OK):
        return f"{FIREFOX} is missing (make firefox installs Debian's firefox-esr)"
    if shutil.which("node") is None:
        return "node is missing (make firefox needs Debian's nodejs)"
    if not (DRIVER_DIR / "node_modules" / "puppeteer-core").is_dir():
        return "tests/web/bidi/node_modules is missing (make firefox runs npm ci there)"
    return None


class DriverError(RuntimeError):
    """The driver refused a command or the browser failed it."""


@dataclass
class Firefox:
    """One firefox-esr behind one driver process."""

    process: asyncio.subprocess.Process
    version: str = ""
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    recorded: dict[int, Recorded] = field(default_factory=dict)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    reader: asyncio.Task[None] | None = None

    async def command(self, method: str, timeout: float = COMMAND_TIMEOUT, **params: Any) -> Any:
        number = next(self.ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[number] = future
        assert self.process.stdin is not None
        line = json.dumps({"id": number, "method": method, "params": params})
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise DriverError(f"firefox: {method} did not finish within {timeout} s") from None
        finally:
            self.pending.pop(number, None)

    async def read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            message = json.loads(raw)
            if "event" in message:
                recorded = self.recorded.get(message["page"])
                if recorded is not None:
                    recorded.errors.append(message["text"])
                continue
            future = self.pending.get(message["id"])
            if future is None or future.done():
                continue
            if "error" in message:
                future.set_exception(DriverError(message["error"]))
            else:
                future.set_result(message["result"])
        for future in self.pending.values():
            if not future.done():
                future.set_exception(DriverError("the firefox driver exited"))

    async def context(self) -> FirefoxContext:
        result = await self.command("newContext")
        return FirefoxContext(self, result["context"])

    async def close(self) -> None:
        try:
            await self.command("close", timeout=30)
        finally:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
            if self.reader is not None:
                await self.reader


@dataclass
class FirefoxContext:
    """A private browsing context: its own cookies and IndexedDB, like a Playwright context."""

    browser: Firefox
    id: int
    init_scripts: list[str] = field(default_factory=list)

    async def add_init_script(self, source: str) -> None:
        """Run `source` before the page's own scripts in every page opened after this."""
        self.init_scripts.append(source)

    async def page(self) -> tuple[FirefoxPage, Recorded]:
        result = await self.browser.command("newPage", context=self.id, viewport=DESKTOP)
        page = FirefoxPage(self.browser, result["page"])
        recorded = Recorded()
        self.browser.recorded[page.id] = recorded
        for source in self.init_scripts:
            await self.browser.command("addInitScript", page=page.id, source=source)
        return page, recorded

    async def close(self) -> None:
        await self.browser.command("closeContext", context=self.id)


@dataclass
class FirefoxPage:
    """The methods of Playwright's Page that the tests use (evaluate takes an expression), so
    helpers such as browser_server.poll work with either browser."""

    browser: Firefox
    id: int

    async def goto(self, url: str) -> int | None:
        return (await self.browser.command("goto", page=self.id, url=url))["status"]

    async def reload(self) -> None:
        await self.browser.command("reload", page=self.id)

    async def current_url(self) -> str:
        return (await self.browser.command("url", page=self.id))["url"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.browser.command("evaluate", page=self.id, expression=expression)
        return result.get("value")  # JSON has no undefined: the key is absent

    async def click(self, selector: str) -> None:
        await self.browser.command(
            "click", page=self.id, selector=selector, wait_ms=ACTION_TIMEOUT_MS
        )

    async def fill(self, selector: str, value: str) -> None:
        await self.browser.command(
            "fill", page=self.id, selector=selector, value=value, wait_ms=ACTION_TIMEOUT_MS
        )

    async def text(self, selector: str) -> str | None:
        return await self.evaluate(
            f"document.querySelector({json.dumps(selector)})?.textContent ?? null"
        )

    async def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await self.browser.command("screenshot", page=self.id, path=str(SCREENSHOTS / name))


async def launch() -> Firefox:
    process = await asyncio.create_subprocess_exec(
        "node",
        str(DRIVER),
        cwd=DRIVER_DIR,
        # the time zone of the chromium contexts (browser_server.WebServer.context), so a time
        # typed into the dashboard means the same instant in either browser
        env={**os.environ, "TZ": "Europe/Berlin"},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        # puppeteer's own messages go to our stderr, where pytest shows them on a failure
        limit=16 * 1024 * 1024,  # a screenshot's path is short, but an evaluate result may not be
    )
    firefox = Firefox(process)
    firefox.reader = asyncio.create_task(firefox.read())
    try:
        result = await firefox.command(
            "launch", timeout=120, executablePath=FIREFOX, prefs=FIREFOX_PREFS
        )
    except BaseException:
        process.kill()
        await process.wait()
        raise
    firefox.version = result["version"]
    return firefox


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def firefox() -> AsyncIterator[Firefox]:
    """One firefox-esr per test module; each test opens fresh contexts."""
    reason = missing()
    if reason is not None:
        # A failure, not a skip: a matrix that quietly loses a browser proves nothing.
        pytest.fail(reason)
    browser = await launch()
    try:
        yield browser
    finally:
        await browser.close()
