"""Single sign-on in a real browser (Debian chromium): the login page's portal button, the real
provider's own form (pyoidc, tests/oidc_provider.py), and back to the dashboard; a portal account
without access ends on the refusal page. The provider runs as "localhost" and the app on
127.0.0.1, two sites as a portal's domain and the practice's are, so chromium's SameSite rules
apply as in production: the Lax pending cookie must come back with the provider's redirect, and
the Strict session must work after a redirect chain that began on the provider's site."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from tests.oidc_provider import USER_PASSWORD
from tests.signaling.sso_setup import ALICE, STRANGER, SsoSetup, sso_serving
from tests.web.browser_server import DESKTOP, WebServer, screenshot
from tests.web.browser_server import browser as browser  # the fixtures, for pytest
from tests.web.browser_server import web_server as web_server

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def sso(tmp_path: Path, tcp_port: int) -> AsyncIterator[SsoSetup]:
    async with sso_serving(tmp_path, tcp_port, provider_host="localhost") as setup:
        yield setup


async def context(browser: Browser):
    return await browser.new_context(viewport=DESKTOP, locale="de-DE", timezone_id="Europe/Berlin")


async def through_the_portal(sso: SsoSetup, browser: Browser, login: str):
    """A fresh browser from the login page through the portal's form as `login`."""
    page = await (await context(browser)).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{sso.url}/login")
    button = page.locator("#btn-sso")
    await expect(button).to_be_visible()
    await button.click()
    await page.wait_for_url(lambda url: url.startswith(f"{sso.provider.issuer}/authorization?"))
    await page.locator("#portal-login").fill(login)
    await page.locator("#portal-password").fill(USER_PASSWORD)
    await page.locator("#portal-submit").click()
    return page, errors


async def test_the_portal_button_signs_in_through_the_provider_to_the_dashboard(sso, browser):
    await sso.provision(ALICE, "alice")
    page = await (await context(browser)).new_page()
    await page.goto(f"{sso.url}/login")
    await expect(page.locator("#btn-sso")).to_have_text("Mit dem Portal anmelden")
    # the password form stays beside it
    await expect(page.locator("#username")).to_be_visible()
    await screenshot(page, "login-sso")
    await page.context.close()

    page, errors = await through_the_portal(sso, browser, ALICE)
    await page.wait_for_url(f"{sso.url}/dashboard")
    await expect(page.locator("#user-name")).to_have_text("alice")
    assert errors == []
    await page.context.close()


async def test_a_portal_account_without_access_ends_on_the_refusal_page(sso, browser):
    page, errors = await through_the_portal(sso, browser, STRANGER)
    await page.wait_for_url(f"{sso.url}/login/sso/refused")
    await expect(page.locator("h1")).to_have_text("Für Ihr Portal-Konto gibt es hier keinen Zugang")
    assert not [c for c in await page.context.cookies() if c["name"] == "sprechzimmer_session"]
    await screenshot(page, "login-sso-refused")
    # the language switch works on it: it is a page of its own, not the used callback
    await page.get_by_role("link", name="English").click()
    await expect(page.locator("h1")).to_have_text("Your portal account has no access here")
    assert errors == []
    await page.context.close()


async def test_without_single_sign_on_the_login_page_has_no_portal_button(
    web_server: WebServer,
):
    context = await web_server.context()
    page, recorded = await web_server.page(context)
    async with page.expect_response("**/api/therapist/login/methods") as answer:
        await page.goto(f"{web_server.url}/login")
    assert (await (await answer.value).json())["sso"] is False
    await expect(page.locator("#btn-login")).to_be_enabled()
    await expect(page.locator("#btn-sso")).to_be_hidden()
    assert recorded.errors == []
    await context.close()
