"""Helpers for the client API tests: invite links with chosen windows, and consenting."""

from __future__ import annotations

import datetime as dt
from http.cookies import SimpleCookie
from typing import Any

import aiohttp

from signaling.credentials import hash_token, new_token
from signaling.terms import TERMS_VERSION
from tests.privacy_canaries import remember
from tests.signaling.api_server import ApiServer, call

INVALID_LINK = {"error": {"code": "invalid_link", "message": "This link is not valid"}}


async def create_via_therapist_api(
    api: ApiServer, starts_in: dt.timedelta
) -> tuple[str, dict[str, Any]]:
    """An appointment made by therapist alice through her API; its token and JSON."""
    if await api.storage.get_therapist("alice") is None:
        await api.add_therapist("alice")
    therapist, csrf = await api.signed_in("alice")
    starts_at = (dt.datetime.now(dt.UTC) + starts_in).replace(microsecond=0).isoformat()
    async with therapist:
        status, body, _ = await call(
            therapist,
            "POST",
            "/api/therapist/appointments",
            json={"starts_at": starts_at},
            headers={"X-CSRF-Token": csrf},
        )
    assert status == 201, body
    token = body["invite_url"].rsplit("/j/", 1)[1]
    remember(token)
    return token, body


async def link_at(
    api: ApiServer,
    opened: dt.timedelta = dt.timedelta(minutes=10),
    valid_for: dt.timedelta = dt.timedelta(hours=2),
) -> str:
    """A token whose link opened `opened` ago (negative: opens later) and stays valid for
    `valid_for` from now (negative: expired). Made through storage, which allows any window."""
    if await api.storage.get_therapist("alice") is None:
        await api.add_therapist("alice")
    therapist = await api.storage.get_therapist("alice")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    token = new_token()
    remember(token)
    await api.storage.create_appointment(
        therapist.id,
        now - opened + dt.timedelta(minutes=15),
        50,
        now - opened,
        now + valid_for,
        invite_token_hash=hash_token(token),
    )
    return token


def consent_body(**changes: Any) -> dict[str, Any]:
    body = {"terms_version": TERMS_VERSION, "accept_terms": True, "consent_processing": True}
    body.update(changes)
    return {key: value for key, value in body.items() if value is not _OMIT}


_OMIT = object()
OMIT: Any = _OMIT


async def consent(
    browser: aiohttp.ClientSession, token: str, **changes: Any
) -> tuple[int, Any, Any]:
    remember(changes.get("display_name"))
    return await call(browser, "POST", f"/api/client/{token}/consent", json=consent_body(**changes))


def client_cookie(headers: Any) -> Any:
    """The `sz_client` morsel of a response's Set-Cookie headers, or None."""
    jar: SimpleCookie = SimpleCookie()
    for value in headers.getall("Set-Cookie", []):
        jar.load(value)
    return jar.get("sz_client")
