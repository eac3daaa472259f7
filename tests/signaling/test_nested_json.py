"""Deeply nested JSON bodies get 400 `invalid_request`, never a 500, on every JSON endpoint.

Python's json parser recurses once per nesting level, so a few kilobytes of ``[[[[…`` used to
raise RecursionError, which no handler expected. Each test posts such a body over a real socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from signaling.app import SECURITY_HEADERS
from signaling.credentials import hash_token, new_token
from signaling.http_errors import MAX_BODY_BYTES, MAX_JSON_DEPTH, parse_json
from signaling.ws_messages import BadMessage, parse_message
from tests.signaling.api_server import ApiServer, call
from tests.signaling.api_server import api as api  # the fixture, re-exported for pytest
from tests.signaling.client_links import link_at

# Far past the interpreter's recursion limit (1000) yet well under the 64 KiB body limit.
DEEP = 20_000
DEEP_ARRAYS = "[" * DEEP + "]" * DEEP
DEEP_OBJECTS = '{"a":' * (DEEP // 2) + "1" + "}" * (DEEP // 2)
# Just under the recursion limit: parses, but re-serialising it elsewhere would not.
NEAR_LIMIT = '{"a":' + "[" * 950 + "]" * 950 + "}"

BODIES = {"arrays": DEEP_ARRAYS, "objects": DEEP_OBJECTS, "near_limit": NEAR_LIMIT}


def test_the_deep_bodies_fit_under_the_body_limit():
    assert all(len(body) < MAX_BODY_BYTES for body in BODIES.values())


@pytest.fixture
async def portal(api: ApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    await api.add_therapist("alice")
    key = new_token()
    await api.storage.add_api_key("portal", hash_token(key))
    async with api.client(Authorization=f"Bearer {key}") as client:
        yield client


async def post_raw(client: aiohttp.ClientSession, path: str, body: str, **headers: str):
    return await call(
        client, "POST", path, data=body, headers={"Content-Type": "application/json", **headers}
    )


def assert_invalid_request(status, body, headers) -> None:  # type: ignore[no-untyped-def]
    assert status == 400, (status, body)
    assert body["error"]["code"] == "invalid_request"
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value, name
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("shape", BODIES)
async def test_deep_json_at_login_without_an_account_is_400(api: ApiServer, shape):
    async with api.client() as stranger:
        assert_invalid_request(*await post_raw(stranger, "/api/therapist/login", BODIES[shape]))


@pytest.mark.parametrize("shape", BODIES)
async def test_deep_json_at_consent_is_400(api: ApiServer, shape):
    token = await link_at(api)
    async with api.client() as browser:
        result = await post_raw(browser, f"/api/client/{token}/consent", BODIES[shape])
    assert_invalid_request(*result)


@pytest.mark.parametrize("shape", BODIES)
async def test_deep_json_from_a_signed_in_therapist_is_400(api: ApiServer, shape):
    await api.add_therapist("alice")
    therapist, csrf = await api.signed_in("alice")
    async with therapist:
        result = await post_raw(
            therapist, "/api/therapist/appointments", BODIES[shape], **{"X-CSRF-Token": csrf}
        )
    assert_invalid_request(*result)


@pytest.mark.parametrize("shape", BODIES)
async def test_deep_json_at_the_integration_api_is_400(portal, shape):
    assert_invalid_request(*await post_raw(portal, "/api/v1/appointments", BODIES[shape]))


async def test_the_server_still_answers_after_deep_bodies(api: ApiServer):
    async with api.client() as stranger:
        for body in BODIES.values():
            await post_raw(stranger, "/api/therapist/login", body)
        status, body, _ = await call(stranger, "GET", "/healthz")
    assert (status, body) == (200, {"status": "ok"})


def test_parse_json_accepts_nesting_up_to_the_limit():
    text = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert parse_json(text) is not None


@pytest.mark.parametrize(
    "text", ["[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), *BODIES.values()]
)
def test_parse_json_refuses_nesting_past_the_limit(text):
    with pytest.raises(ValueError, match="nested"):
        parse_json(text)


def test_a_websocket_e2ee_payload_nested_near_the_recursion_limit_is_a_bad_message():
    # It parsed before, and json.dumps of it on the way to the other browser, from a deeper
    # stack, raised RecursionError: the other side's writer stopped, or the socket got 1011.
    text = '{"v": 1, "type": "e2ee", "payload": ' + NEAR_LIMIT + "}"
    with pytest.raises(BadMessage, match="nested too deeply"):
        parse_message(text)


def test_a_websocket_message_nested_past_the_recursion_limit_is_a_bad_message():
    with pytest.raises(BadMessage):
        parse_message('{"v": 1, "type": "e2ee", "payload": ' + DEEP_OBJECTS + "}")
