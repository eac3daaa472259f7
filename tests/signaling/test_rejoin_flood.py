"""A rejoin loop does not flood the therapist (issue #11, item 6): joins per invite are limited,
and presence pushes to the other side are coalesced (a repeat of what it was last told is not
sent again). No media: joins only, over real WebSockets on a real app."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from signaling.consultations import JOIN_BURST, JOIN_REFILL_SECONDS
from tests.signaling.api_server import ApiServer, serving, write_config
from tests.signaling.test_ws_call import Side, book, consenting_client, seated

REJOINS = 60


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ApiServer]:
    async with serving(write_config(tmp_path)) as api:
        await api.add_therapist("alice")
        yield api


async def rejoin_loop(client: Side, token: str) -> list[str]:
    """The client's browser opens a new socket and joins, REJOINS times; what each join got."""
    outcomes = []
    for _ in range(REJOINS):
        side = Side(client.http)
        await side.connect()
        await side.send(type="join", invite=token)
        while True:
            raw = await side.ws.receive_json(timeout=15)
            if raw["type"] in ("joined", "error"):
                outcomes.append(raw["type"] if raw["type"] == "joined" else raw["code"])
                break
        await side.ws.close()
    return outcomes


async def test_a_rejoin_loop_is_refused_after_the_join_burst(server):
    therapist, _, token = await book(server)
    client = await consenting_client(server, token)
    try:
        started = time.monotonic()
        outcomes = await rejoin_loop(client, token)
        # the burst, plus what refilled while the loop ran (however slow the machine)
        allowed = JOIN_BURST + int((time.monotonic() - started) / JOIN_REFILL_SECONDS) + 1
        assert outcomes.count("joined") <= allowed, outcomes
        assert outcomes.count("rate_limited") == REJOINS - outcomes.count("joined"), outcomes
    finally:
        await therapist.close()
        await client.close()


async def test_a_rejoin_loop_sends_the_therapist_few_presence_messages(server):
    therapist, appointment_id, token = await book(server)
    client = await consenting_client(server, token)
    try:
        await seated(therapist, appointment=appointment_id)
        started = time.monotonic()
        await rejoin_loop(client, token)
        # everything pushed to the therapist during the loop is queued in front of `ended`
        await therapist.send(type="end")
        await therapist.next("ended")
        peers = [m for m in therapist.received if m["type"] == "peer"]
        joins = JOIN_BURST + int((time.monotonic() - started) / JOIN_REFILL_SECONDS) + 1
        assert len(peers) <= joins, f"{len(peers)} presence messages for {REJOINS} rejoins: {peers}"
    finally:
        await therapist.close()
        await client.close()
