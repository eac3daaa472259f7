"""Serving the pages and their static files: routes, language choice, caching, static safety."""

from __future__ import annotations

import datetime as dt

import aiohttp

from tests.signaling.api_server import ApiServer
from tests.signaling.api_server import api as api  # the fixture, re-exported for pytest
from tests.signaling.client_links import consent, link_at


async def get(api: ApiServer, path: str, **headers: str) -> tuple[int, str, aiohttp.ClientResponse]:
    async with (
        api.client(**headers) as browser,
        browser.get(path, allow_redirects=False) as response,
    ):
        return response.status, await response.text(), response


# --- routes


async def test_root_sends_a_visitor_to_the_login_page(api: ApiServer):
    status, _, response = await get(api, "/")
    assert status == 302
    assert response.headers["Location"] == "/login"


async def test_root_and_login_send_a_signed_in_therapist_to_the_dashboard(api: ApiServer):
    await api.add_therapist()
    session, _ = await api.signed_in()
    async with session:
        for path in ("/", "/login"):
            async with session.get(path, allow_redirects=False) as response:
                assert response.status == 302
                assert response.headers["Location"] == "/dashboard"


async def test_pages_are_html_with_the_strict_csp(api: ApiServer):
    for path in ("/login", "/dashboard", "/call/1", "/terms", "/privacy"):
        status, text, response = await get(api, path)
        assert status == 200, path
        assert response.content_type == "text/html"
        assert text.startswith("<!doctype html>")
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]


async def test_the_call_view_is_included_in_both_call_pages(api: ApiServer):
    token = await link_at(api)
    for path in ("/call/1", f"/j/{token}"):
        _, text, _ = await get(api, path)
        assert 'id="remote-video"' in text
        assert "<!-- include:" not in text


async def test_appointment_pages_are_not_stored(api: ApiServer):
    token = await link_at(api)
    for path in ("/dashboard", "/call/1", f"/j/{token}", "/j/unknown"):
        _, _, response = await get(api, path)
        assert response.headers["Cache-Control"] == "no-store", path


# --- the invite link


async def test_an_open_link_shows_the_waiting_room(api: ApiServer):
    status, text, _ = await get(api, f"/j/{await link_at(api)}")
    assert status == 200
    assert 'id="join-form"' in text


async def test_a_link_that_opens_later_shows_the_waiting_room(api: ApiServer):
    token = await link_at(api, opened=-dt.timedelta(hours=1))
    status, _, _ = await get(api, f"/j/{token}")
    assert status == 200


async def test_every_invalid_link_gets_the_same_404_page(api: ApiServer):
    expired = await link_at(api, opened=dt.timedelta(hours=3), valid_for=-dt.timedelta(minutes=1))
    used = await link_at(api)
    async with api.client() as other_browser:
        assert (await consent(other_browser, used))[0] == 200
    answers = set()
    for token in ("unknown", "A" * 43, expired, used):
        status, text, _ = await get(api, f"/j/{token}")
        assert status == 404
        answers.add(text)
    assert len(answers) == 1
    assert 'data-i18n="invalid.heading"' in answers.pop()


async def test_the_browser_that_consented_still_gets_the_waiting_room(api: ApiServer):
    token = await link_at(api)
    async with api.client() as browser:
        assert (await consent(browser, token))[0] == 200
        async with browser.get(f"/j/{token}") as response:
            assert response.status == 200


# --- language


async def test_pages_are_german_by_default(api: ApiServer):
    _, text, _ = await get(api, "/login")
    assert '<html lang="de">' in text


async def test_accept_language_preferring_english_gives_english(api: ApiServer):
    _, text, _ = await get(api, "/login", **{"Accept-Language": "en-GB,en;q=0.9,de;q=0.8"})
    assert '<html lang="en">' in text


async def test_accept_language_preferring_german_keeps_german(api: ApiServer):
    _, text, _ = await get(api, "/login", **{"Accept-Language": "fr,de;q=0.9,en;q=0.8"})
    assert '<html lang="de">' in text


async def test_the_lang_query_wins_and_is_remembered_in_a_cookie(api: ApiServer):
    async with api.client(**{"Accept-Language": "de"}) as browser:
        async with browser.get("/terms?lang=en") as response:
            assert '<html lang="en">' in await response.text()
            assert response.cookies["lang"].value == "en"
        async with browser.get("/privacy") as response:
            assert '<html lang="en">' in await response.text()
        async with browser.get("/privacy?lang=de") as response:
            assert '<html lang="de">' in await response.text()


# --- static files


async def test_static_files_have_their_types(api: ApiServer):
    expected = {
        "/static/js/i18n.js": "text/javascript",
        "/static/css/app.css": "text/css",
        "/static/i18n/de.json": "application/json",
        "/static/icons/logo.svg": "image/svg+xml",
    }
    for path, content_type in expected.items():
        status, _, response = await get(api, path)
        assert status == 200, path
        assert response.content_type == content_type, path
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_static_refuses_traversal_directories_and_unknown_types(api: ApiServer):
    for path in (
        "/static/../signaling/app.py",
        "/static/%2e%2e/%2e%2e/pyproject.toml",
        "/static/js/%2e%2e/%2e%2e/pages/login.html",
        "/static/js/",
        "/static/js",
        "/static/",
        "/static/i18n/missing.json",
        "/static/js/..%5c..%5cpages%5clogin.html",
    ):
        status, text, _ = await get(api, path)
        assert status == 404, path
        assert "<script" not in text
