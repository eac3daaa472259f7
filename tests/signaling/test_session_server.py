"""What the session pages ask of the server (issue #14), over real HTTP and WebSocket on
127.0.0.1 with a real SQLite file: the crisis card (switched on per appointment, validated,
shown to the therapist only), the arrival-alert setting, the planned end and the session's start
kept by the server, why the other side is gone, and what a bound browser needs to go back in."""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp

from signaling.storage import CrisisCard
from tests.privacy_canaries import remember
from tests.signaling.api_server import PUBLIC_URL, call
from tests.signaling.test_ws_call import Side, book, consenting_client, seated
from tests.signaling.test_ws_call import server as server  # the fixture, for pytest

LOCATION = "Gartenweg 17, Hinterhaus, 2. OG, 37073 Göttingen"
PHONE = "+49 (551) 123-4567"
remember(LOCATION, PHONE)


async def therapist_call(server, method: str, path: str, **body: Any) -> tuple[int, Any]:
    http, csrf = await server.signed_in("alice")
    async with http:
        status, answer, _ = await call(
            http,
            method,
            path,
            json=body if method != "GET" else None,
            headers={"X-CSRF-Token": csrf, "Origin": PUBLIC_URL},
        )
    return status, answer


async def book_with_card(server) -> tuple[Side, int, str]:
    therapist, appointment_id, token = await book(server)
    status, body = await therapist_call(
        server, "PATCH", f"/api/therapist/appointments/{appointment_id}", crisis_card=True
    )
    assert status == 200 and body["crisis_card"] is True, body
    return therapist, appointment_id, token


async def consent_with(http: aiohttp.ClientSession, token: str, **fields: Any):
    status, info, _ = await call(http, "GET", f"/api/client/{token}")
    assert status == 200, info
    payload = {
        "accept_terms": True,
        "consent_processing": True,
        "terms_version": info["terms_version"],
        **fields,
    }
    return await call(
        http, "POST", f"/api/client/{token}/consent", json=payload, headers={"Origin": PUBLIC_URL}
    )


# --- the therapist's side: settings and the card's switch


async def test_the_arrival_alert_is_on_by_default_and_the_therapist_turns_it_off(server):
    assert await therapist_call(server, "GET", "/api/therapist/settings") == (
        200,
        {"arrival_alert": True},
    )
    status, body = await therapist_call(
        server, "PUT", "/api/therapist/settings", arrival_alert=False
    )
    assert (status, body) == (200, {"arrival_alert": False})
    assert (await therapist_call(server, "GET", "/api/therapist/settings"))[1] == {
        "arrival_alert": False
    }


async def test_a_setting_that_is_no_boolean_or_unknown_is_refused(server):
    for body in ({"arrival_alert": "no"}, {"arrival_alert": 0}, {"sound": True}, {}):
        status, answer = await therapist_call(server, "PUT", "/api/therapist/settings", **body)
        assert status == 400 and answer["error"]["code"] == "invalid_request", (body, answer)


async def test_changing_a_setting_needs_the_csrf_token(server):
    http, _ = await server.signed_in("alice")
    async with http:
        status, _, _ = await call(
            http,
            "PUT",
            "/api/therapist/settings",
            json={"arrival_alert": False},
            headers={"Origin": PUBLIC_URL},
        )
    assert status == 403
    assert (await therapist_call(server, "GET", "/api/therapist/settings"))[1] == {
        "arrival_alert": True
    }


async def test_the_crisis_card_is_switched_on_at_creation_and_off_by_an_edit(server):
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(microsecond=0)
    status, created = await therapist_call(
        server,
        "POST",
        "/api/therapist/appointments",
        starts_at=start.isoformat(),
        crisis_card=True,
    )
    assert status == 201 and created["crisis_card"] is True, created
    status, listed = await therapist_call(server, "GET", "/api/therapist/appointments")
    assert [a["crisis_card"] for a in listed["appointments"]] == [True]
    path = f"/api/therapist/appointments/{created['id']}"
    status, edited = await therapist_call(server, "PATCH", path, crisis_card=False)
    assert status == 200 and edited["crisis_card"] is False, edited
    status, refused = await therapist_call(server, "PATCH", path, crisis_card="yes")
    assert status == 400 and "crisis_card" in refused["error"]["message"], refused


# --- the client's side: the link and consent


async def test_the_link_tells_the_client_the_planned_end(server):
    _, appointment_id, token = await book(server)
    http = server.client()
    async with http:
        status, info, _ = await call(http, "GET", f"/api/client/{token}")
    appointment = await server.storage.get_appointment(appointment_id)
    planned = appointment.starts_at + dt.timedelta(minutes=appointment.duration_minutes)
    assert status == 200
    assert info["ends_at"] == planned.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert info["crisis_card"] is False and "resume" not in info and "display_name" not in info


async def test_consent_without_the_crisis_card_the_therapist_switched_on_is_refused(server):
    _, appointment_id, token = await book_with_card(server)
    bad = [
        {},
        {"crisis_location": LOCATION},
        {"crisis_phone": PHONE},
        {"crisis_location": "   ", "crisis_phone": PHONE},
        {"crisis_location": "x" * 301, "crisis_phone": PHONE},
        {"crisis_location": LOCATION, "crisis_phone": "call me"},
        {"crisis_location": LOCATION, "crisis_phone": "12"},
        {"crisis_location": LOCATION, "crisis_phone": "1" * 41},
        {"crisis_location": ["Gartenweg"], "crisis_phone": PHONE},
    ]
    http = server.client()
    async with http:
        for fields in bad:
            status, body, _ = await consent_with(http, token, **fields)
            assert status == 400 and body["error"]["code"] == "invalid_request", (fields, body)
        status, info, _ = await call(http, "GET", f"/api/client/{token}")
    assert info["bound"] is False, "a refused consent must not bind the link"
    assert await server.storage.get_crisis_card(appointment_id) == CrisisCard(None, None)


async def test_a_crisis_card_for_an_appointment_without_one_is_refused(server):
    _, _, token = await book(server)
    http = server.client()
    async with http:
        status, body, _ = await consent_with(
            http, token, crisis_location=LOCATION, crisis_phone=PHONE
        )
    assert status == 400 and "no crisis card" in body["error"]["message"], body


async def test_the_bound_browser_may_resume_with_its_name_and_card_kept(server):
    _, appointment_id, token = await book_with_card(server)
    http = server.client()
    async with http:
        status, _, _ = await consent_with(
            http,
            token,
            display_name="Kim",
            crisis_location=f"  {LOCATION}\n",
            crisis_phone=PHONE,
        )
        assert status == 200
        status, info, _ = await call(http, "GET", f"/api/client/{token}")
    assert (info["bound"], info["resume"], info["display_name"]) == (True, True, "Kim"), info
    card = await server.storage.get_crisis_card(appointment_id)
    assert (card.location, card.phone) == (LOCATION, PHONE)
    stranger = server.client()
    async with stranger:
        status, _, _ = await call(stranger, "GET", f"/api/client/{token}")
    assert status == 404


async def test_a_new_link_drops_what_the_old_links_client_wrote_on_the_card(server):
    _, appointment_id, token = await book_with_card(server)
    http = server.client()
    async with http:
        await consent_with(http, token, crisis_location=LOCATION, crisis_phone=PHONE)
    status, body = await therapist_call(
        server, "POST", f"/api/therapist/appointments/{appointment_id}/invite"
    )
    assert status == 200 and body["crisis_card"] is True
    card = await server.storage.get_crisis_card(appointment_id)
    assert (card.location, card.phone) == (None, None)


# --- the socket: the card, the session's start, and why the other side is gone


async def test_the_crisis_card_reaches_the_therapist_and_never_the_client(server):
    therapist, appointment_id, token = await book_with_card(server)
    client = Side(server.client())
    status, _, _ = await consent_with(
        client.http, token, display_name="Kim", crisis_location=LOCATION, crisis_phone=PHONE
    )
    assert status == 200
    again = Side(therapist.http)
    try:
        await seated(therapist, appointment=appointment_id)
        await seated(client, invite=token)
        peer = await therapist.next("peer")
        assert peer["crisis_card"] == {"location": LOCATION, "phone": PHONE}, peer
        # a second therapist tab learns it from `joined`
        joined = await seated(again, appointment=appointment_id)
        assert joined["peer"]["crisis_card"] == {"location": LOCATION, "phone": PHONE}
        assert LOCATION not in "".join(client.raw) and PHONE not in "".join(client.raw)
    finally:
        await client.close()
        if again.ws is not None:
            await again.ws.close()
        await therapist.close()


async def test_both_sides_and_a_rejoin_get_the_same_session_start_from_the_server(server):
    therapist, appointment_id, token = await book(server)
    client = await consenting_client(server, token)
    try:
        first = await seated(therapist, appointment=appointment_id)
        assert first["session_started_at"] is None, "nobody else was there yet"
        joined = await seated(client, invite=token)
        appointment = await server.storage.get_appointment(appointment_id)
        began = appointment.both_present_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert joined["session_started_at"] == began
        await client.ws.close()
        await therapist.next("peer")  # gone
        rejoined = await seated(client, invite=token)
        assert rejoined["session_started_at"] == began, "a reload must not restart the clock"
    finally:
        await therapist.close()
        await client.close()


async def test_gone_says_left_when_the_client_left_and_lost_when_the_socket_dropped(server):
    therapist, appointment_id, token = await book(server)
    client = await consenting_client(server, token)
    try:
        await seated(therapist, appointment=appointment_id)
        await seated(client, invite=token)
        await therapist.next("peer")  # present
        await client.send(type="leave")
        gone = await therapist.next("peer")
        assert (gone["state"], gone["reason"]) == ("gone", "left"), gone
        await client.send(type="join", invite=token)
        await client.next("joined")
        assert (await therapist.next("peer"))["state"] == "present"
        await client.ws.close()
        gone = await therapist.next("peer")
        assert (gone["state"], gone["reason"]) == ("gone", "lost"), gone
    finally:
        await therapist.close()
        await client.close()
