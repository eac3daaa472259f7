"""Debian's WebKitGTK (webkit2gtk-driver's WebKitWebDriver, classic WebDriver over HTTP) under
its own Xvfb, asked what a page on our origin can use for a call.

Only a probe: Debian 12's WebKitGTK has no RTCPeerConnection, so no WebKit call can be tested
here (docs/browsers.md). The display comes from Xvfb's -displayfd and the driver's port from
tests/ports.py, so concurrent runs never share either.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from tests.ports import reserve_ports

DRIVER = "WebKitWebDriver"
XVFB = "Xvfb"

# MiniBrowser's own switches (WebKitSettings): WebRTC and media capture asked for explicitly,
# with mock cameras, so a missing API is the build's and not a setting's.
BROWSER_ARGS = [
    "--automation",
    "--enable-webrtc=true",
    "--enable-media-stream=true",
    "--enable-mock-capture-devices=true",
]

PROBE = """return {
  userAgent: navigator.userAgent,
  secure: window.isSecureContext,
  getUserMedia: Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia),
  RTCPeerConnection: typeof RTCPeerConnection !== "undefined",
  RTCRtpScriptTransform: typeof RTCRtpScriptTransform !== "undefined",
  createEncodedStreams: typeof RTCRtpSender !== "undefined"
    && "createEncodedStreams" in RTCRtpSender.prototype,
};"""

STARTUP_TIMEOUT = 60.0


async def webrtc_features() -> dict[str, Any]:
    """What a page served from http://127.0.0.1 (a secure context) finds in WebKitGTK."""
    read, write = os.pipe()
    xvfb = await asyncio.create_subprocess_exec(
        XVFB, "-displayfd", str(write), "-nolisten", "tcp", pass_fds=(write,)
    )
    os.close(write)
    try:
        display = await asyncio.wait_for(_read_line(read), STARTUP_TIMEOUT)
        with reserve_ports(1, tcp=True) as ports:
            driver = await asyncio.create_subprocess_exec(
                DRIVER,
                f"--port={ports.low}",
                env={**os.environ, "DISPLAY": f":{display}"},
            )
            try:
                return await _probe(f"http://127.0.0.1:{ports.low}")
            finally:
                driver.terminate()
                await driver.wait()
    finally:
        os.close(read)
        xvfb.terminate()
        await xvfb.wait()


async def _read_line(fd: int) -> str:
    loop = asyncio.get_running_loop()
    data = b""
    while not data.endswith(b"\n"):
        chunk = await loop.run_in_executor(None, os.read, fd, 16)
        if not chunk:
            raise RuntimeError("Xvfb exited without naming a display")
        data += chunk
    return data.decode().strip()


async def _probe(driver_url: str) -> dict[str, Any]:
    async def probe_page(_: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><p>probe</p>", content_type="text/html")

    page = web.Application()
    page.router.add_get("/", probe_page)
    runner = web.AppRunner(page, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    page_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with ClientSession(timeout=ClientTimeout(total=STARTUP_TIMEOUT)) as http:
            await _until_listening(http, driver_url)
            capabilities = {"alwaysMatch": {"webkitgtk:browserOptions": {"args": BROWSER_ARGS}}}
            async with http.post(
                f"{driver_url}/session", json={"capabilities": capabilities}
            ) as response:
                session = (await response.json())["value"]
            base = f"{driver_url}/session/{session['sessionId']}"
            try:
                async with http.post(
                    f"{base}/url", json={"url": f"http://127.0.0.1:{page_port}/"}
                ) as response:
                    assert response.status == 200, await response.text()
                async with http.post(
                    f"{base}/execute/sync", json={"script": PROBE, "args": []}
                ) as response:
                    features = (await response.json())["value"]
                features["browserVersion"] = session["capabilities"].get("browserVersion")
                return features
            finally:
                async with http.delete(base):
                    pass
    finally:
        await runner.cleanup()


async def _until_listening(http: ClientSession, driver_url: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    while True:
        try:
            async with http.get(f"{driver_url}/status") as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if loop.time() > deadline:
            raise RuntimeError(f"{DRIVER} did not listen within {STARTUP_TIMEOUT} s")
        await asyncio.sleep(0.1)
