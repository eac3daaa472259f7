"""Two-factor sign-in in a real browser (Debian chromium): set it up on the security page (QR
code, first code, recovery codes), then sign in with password and code, including a wrong code
and a reused one; nothing leaves our origin and the CSP holds (no console errors)."""

from __future__ import annotations

import time

import pyotp
import pytest
from playwright.async_api import expect

from tests.privacy_canaries import remember
from tests.signaling.api_server import PASSWORD
from tests.web.browser_server import WebServer, foreign_requests, screenshot
from tests.web.browser_server import browser as browser  # the fixtures, for pytest
from tests.web.browser_server import web_server as web_server

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def password_step(web_server: WebServer, page) -> None:
    await page.goto(f"{web_server.url}/login")
    await page.locator("#username").fill("alice")
    await page.locator("#password").fill(PASSWORD)
    await page.locator("#btn-login").click()
    await expect(page.locator("#code")).to_be_visible()


async def test_set_up_then_sign_in_with_a_code_refusing_wrong_and_reused_codes(
    web_server: WebServer,
):
    context = await web_server.context()
    page, recorded = await web_server.signed_in_page(context)
    await page.goto(f"{web_server.url}/security")
    await page.get_by_role("button", name="Einrichten").click()
    await expect(page.locator("#enrol-qr")).to_be_visible()
    # the QR code is drawn: an SVG data: URI that the browser decoded to a real image
    assert await page.evaluate("document.getElementById('enrol-qr').naturalWidth") > 100
    secret = (await page.locator("#enrol-secret").text_content()).strip()
    remember(secret)
    totp = pyotp.TOTP(secret)
    await screenshot(page, "two-factor-setup")
    await page.locator("#code").fill(totp.now())
    await page.locator("#btn-code").click()
    codes = page.locator("#recovery-codes li")
    await expect(codes).to_have_count(10)
    remember(*[text.strip() for text in await codes.all_text_contents()])
    await expect(page.locator("#security-status")).to_contain_text("eingeschaltet")
    await context.close()

    context = await web_server.context()
    page, recorded = await web_server.page(context)
    await password_step(web_server, page)
    # the password alone gave no session
    assert not [c for c in await context.cookies() if c["name"] == "sprechzimmer_session"]
    await screenshot(page, "login-code")

    wrong = f"{(int(totp.at(time.time() + 30)) + 1) % 1_000_000:06d}"
    await page.locator("#code").fill(wrong)
    await page.locator("#btn-code").click()
    await expect(page.locator("#code-error")).to_have_text(
        "Der Code stimmt nicht. Bitte prüfen Sie ihn und versuchen Sie es erneut."
    )

    code = totp.at(time.time() + 30)
    await page.locator("#code").fill(code)
    await page.locator("#btn-code").click()
    await page.wait_for_url(f"{web_server.url}/dashboard")
    await expect(page.locator("#user-name")).to_have_text("alice")
    assert foreign_requests(web_server, recorded) == []
    # only the wrong code's 401, which chromium logs as a failed resource; no CSP refusal
    assert [e for e in recorded.errors if "status of 401" not in e] == []
    await context.close()

    # the same code again, in another browser: refused as used
    context = await web_server.context()
    page, _ = await web_server.page(context)
    await password_step(web_server, page)
    await page.locator("#code").fill(code)
    await page.locator("#btn-code").click()
    await expect(page.locator("#code-error")).to_have_text(
        "Dieser Code wurde schon verwendet. Bitte warten Sie auf den nächsten Code Ihrer App."
    )
    await expect(page).to_have_url(f"{web_server.url}/login")
    await context.close()
