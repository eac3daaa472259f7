"""A therapist can always cancel (issue #11, item 8): a leaked link must be killable even while
someone sits in the room with it; both people are told and the link dies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from signaling.credentials import hash_token, new_token
from signaling.storage import AppointmentState
from tests.signaling.api_server import PUBLIC_URL, ApiServer, call, serving, write_config
from tests.signaling.test_ws_call import book, close_code, consenting_client, seated


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ApiServer]:
    async with serving(write_config(tmp_path)) as api:
        await api.add_therapist("alice")
        yield api


async def cancel(server: ApiServer, side, appointment_id: int):
    csrf = (await call(side.http, "GET", "/api/therapist/me"))[1]["csrf_token"]
    return await call(
        side.http,
        "DELETE",
        f"/api/therapist/appointments/{appointment_id}",
        headers={"X-CSRF-Token": csrf, "Origin": PUBLIC_URL},
    )


async def test_cancel_while_the_client_waits_ends_the_room_and_kills_the_link(server):
    therapist, appointment_id, token = await book(server)
    client = await consenting_client(server, token)
    try:
        await seated(client, invite=token)
        assert (await server.storage.get_appointment(appointment_id)).state is (
            AppointmentState.WAITING
        )
        status, body, _ = await cancel(server, therapist, appointment_id)
        assert status == 200, body
        assert body["state"] == "cancelled"
        assert (await client.next("ended"))["reason"] == "cancelled"
        assert await close_code(client) == 4004
        assert await server.storage.get_appointment_by_token_hash(hash_token(token)) is None
    finally:
        await therapist.close()
        await client.close()


async def test_cancel_during_the_call_tells_both(server):
    therapist, appointment_id, token = await book(server)
    client = await consenting_client(server, token)
    in_room = type(therapist)(therapist.http)  # the therapist's call page, same browser
    try:
        await seated(in_room, appointment=appointment_id)
        await seated(client, invite=token)
        status, body, _ = await cancel(server, therapist, appointment_id)
        assert status == 200, body
        assert (await in_room.next("ended"))["reason"] == "cancelled"
        assert (await client.next("ended"))["reason"] == "cancelled"
        stored = await server.storage.get_appointment(appointment_id)
        assert stored.state is AppointmentState.CANCELLED
    finally:
        await in_room.close()
        await client.close()


async def test_the_portal_can_cancel_while_the_client_waits(server):
    therapist, appointment_id, token = await book(server)
    key = new_token()
    await server.storage.add_api_key("portal", hash_token(key))
    client = await consenting_client(server, token)
    try:
        await seated(client, invite=token)
        async with server.client(Authorization=f"Bearer {key}") as portal:
            status, body, _ = await call(portal, "DELETE", f"/api/v1/appointments/{appointment_id}")
        assert status == 200, body
        assert (await client.next("ended"))["reason"] == "cancelled"
        stored = await server.storage.get_appointment(appointment_id)
        assert stored.state is AppointmentState.CANCELLED
    finally:
        await therapist.close()
        await client.close()
