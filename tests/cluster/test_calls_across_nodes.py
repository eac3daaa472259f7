"""Calls in a cluster of node processes sharing PostgreSQL and Redis: the two sockets on two
nodes (signals through Redis, media straight to the room's node), the room's node killed under a
live call, and a node drained with a live call."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from signaling.storage import AppointmentState
from signaling.storage.postgresql import PostgresqlStorage
from tests.cluster.node_processes import (
    NodeCluster,
    Page,
    book,
    consenting_client,
    flowing_since,
    node_cluster,
    therapist_session,
    until,
)
from tests.postgres_server import PostgresServer, postgres_server
from tests.redis_server import RedisServer
from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE, looks_like, use_loopback_only
from tests.signaling.api_server import _PASSWORD_HASH

MEDIA_SECONDS = 30.0
BACK_IN_MEDIA_SECONDS = 10.0
DRAIN_COMMAND = (
    sys.executable,
    "-m",
    "signaling",
    "drain",
    "--config",
)  # the bound, kill -9 to media on both sides


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture
async def shared_db(postgres: PostgresServer) -> AsyncIterator[tuple[str, PostgresqlStorage]]:
    dsn = postgres.create_database()
    storage = await PostgresqlStorage.open(dsn, pool_size=2)
    try:
        await storage.add_therapist("alice", _PASSWORD_HASH)
        yield dsn, storage
    finally:
        await storage.close()


def udp_range_of(page: Page) -> set[int]:
    """The UDP ports of the relay candidates in the page's answer."""
    assert page.peer is not None and page.peer.pc.remoteDescription is not None
    sdp = page.peer.pc.remoteDescription.sdp
    return {int(p) for p in re.findall(r"^a=candidate:\S+ \d \S+ \d+ \S+ (\d+) typ", sdp, re.M)}


async def call_on_two_nodes(
    cluster: NodeCluster, therapist_node: str, client_node: str
) -> tuple[Page, Page, int]:
    """Alice books on her node and joins there; the client consents and joins on the other."""
    t_url, c_url = cluster.node(therapist_node).url, cluster.node(client_node).url
    http, csrf = await therapist_session(t_url, "alice")
    appointment_id, token = await book(t_url, http, csrf)
    client_http = await consenting_client(c_url, token)
    therapist = Page(
        "therapist", http, {"appointment": appointment_id}, lambda: t_url, RED_BLUE, 440
    )
    client = Page("client", client_http, {"invite": token}, lambda: c_url, GREEN_WHITE, 880)
    therapist.start()
    client.start()
    return therapist, client, appointment_id


def media_report(*pages: Page) -> str:
    return "; ".join(
        f"{p.name}: joins {p.joins}, nodes {p.nodes_used}, closes {p.closes}, "
        f"frames {(p.peer.received.video_frames, p.peer.received.loud_audio_frames) if p.peer else None}"
        for p in pages
    )


async def test_sockets_on_two_nodes_carry_a_call_with_media_to_the_rooms_node(
    tmp_path: Path, shared_redis: RedisServer, key_prefix: str, shared_db
):
    use_loopback_only()
    dsn, _ = shared_db
    async with node_cluster(tmp_path, dsn, shared_redis, key_prefix) as cluster:
        therapist, client, appointment_id = await call_on_two_nodes(cluster, "n1", "n2")
        try:
            await until(
                lambda: flowing_since(therapist, 0) and flowing_since(client, 0),
                lambda: (
                    "media both ways with the sockets on n1 and n2: "
                    + media_report(therapist, client)
                ),
                MEDIA_SECONDS,
            )
            assert looks_like(therapist.peer.received.last_video, GREEN_WHITE)
            assert looks_like(client.peer.received.last_video, RED_BLUE)
            owner = await cluster.owner(appointment_id)
            assert owner in ("n1", "n2"), owner
            # both answers come from the room's relay: its candidates, its UDP range
            udp = cluster.node(owner).udp
            for page in (therapist, client):
                ports = udp_range_of(page)
                assert ports and all(udp.low <= p <= udp.high for p in ports), (page.name, ports)
            # the peer's presence and name crossed the nodes too
            assert any(m.get("type") == "peer" and m.get("name") is None for m in client.received)
        finally:
            await therapist.stop()
            await client.stop()


async def test_killing_the_rooms_node_brings_both_back_into_media_on_the_other_node(
    tmp_path: Path, shared_redis: RedisServer, key_prefix: str, shared_db
):
    use_loopback_only()
    dsn, storage = shared_db
    async with node_cluster(tmp_path, dsn, shared_redis, key_prefix) as cluster:
        alive = {"n1", "n2"}

        def route(preferred: str):  # a load balancer: the preferred node while it lives
            return lambda: cluster.node(preferred if preferred in alive else min(alive)).url

        t_url, c_url = cluster.node("n1").url, cluster.node("n2").url
        http, csrf = await therapist_session(t_url, "alice")
        appointment_id, token = await book(t_url, http, csrf)
        client_http = await consenting_client(c_url, token)
        therapist = Page(
            "therapist", http, {"appointment": appointment_id}, route("n1"), RED_BLUE, 440
        )
        client = Page("client", client_http, {"invite": token}, route("n2"), GREEN_WHITE, 880)
        therapist.start()
        client.start()
        try:
            await until(
                lambda: flowing_since(therapist, 0) and flowing_since(client, 0),
                lambda: "media both ways before the kill: " + media_report(therapist, client),
                MEDIA_SECONDS,
            )
            owner = await cluster.owner(appointment_id)
            assert owner in alive, owner
            survivor = (alive - {owner}).pop()
            joins = (therapist.joins, client.joins)
            cluster.node(owner).kill()
            alive.discard(owner)
            took = await until(
                lambda: flowing_since(therapist, joins[0]) and flowing_since(client, joins[1]),
                lambda: (
                    f"both back in media after kill -9 of {owner}: "
                    + media_report(therapist, client)
                ),
                BACK_IN_MEDIA_SECONDS,
            )
            print(f"kill -9 of the room's node to media on both sides: {took:.2f} s")
            assert await cluster.owner(appointment_id) == survivor
            stored = await storage.get_appointment(appointment_id)
            assert stored is not None and stored.state is AppointmentState.IN_CALL, stored
            # the appointment ends normally on the survivor: nothing lost, nothing stuck
            await therapist.send(type="end")
            await until(
                lambda: therapist.final == 4004 and client.final == 4004,
                lambda: "both pages told the end: " + media_report(therapist, client),
                MEDIA_SECONDS,
            )
            stored = await storage.get_appointment(appointment_id)
            assert stored is not None and stored.state is AppointmentState.ENDED, stored
        finally:
            await therapist.stop()
            await client.stop()


@pytest.mark.parametrize("how", ["sigterm", "sprechzimmer drain"])
async def test_a_drained_node_keeps_its_live_call_to_the_end_and_new_rooms_go_elsewhere(
    tmp_path: Path, shared_redis: RedisServer, key_prefix: str, shared_db, how: str
):
    use_loopback_only()
    dsn, _ = shared_db
    async with node_cluster(tmp_path, dsn, shared_redis, key_prefix) as cluster:
        therapist, client, appointment_id = await call_on_two_nodes(cluster, "n1", "n1")
        pages = [therapist, client]
        try:
            await until(
                lambda: flowing_since(therapist, 0) and flowing_since(client, 0),
                lambda: "media both ways on n1: " + media_report(therapist, client),
                MEDIA_SECONDS,
            )
            assert await cluster.owner(appointment_id) == "n1"
            drained = cluster.node("n1")
            if how == "sigterm":
                drained.terminate()  # SIGTERM in a cluster = drain
            else:
                result = await asyncio.to_thread(
                    subprocess.run,
                    [*DRAIN_COMMAND, str(drained.config_path), "n1"],
                    capture_output=True,
                    text=True,
                    timeout=MEDIA_SECONDS,
                )
                assert result.returncode == 0, result.stderr
                assert "n1: draining" in result.stdout, result.stdout
            await until(
                lambda: "drain_started" in drained.stderr(),
                lambda: "n1 logged drain_started",
                MEDIA_SECONDS,
            )
            # a new room goes to n2, even with both sockets on the draining node
            http, csrf = await therapist_session(cluster.node("n2").url, "alice")
            second_id, _token = await book(cluster.node("n2").url, http, csrf)
            second = Page(
                "second", http, {"appointment": second_id}, lambda: drained.url, RED_BLUE, 440
            )
            pages.append(second)
            second.start()
            await until(lambda: second.joins > 0, lambda: media_report(second), MEDIA_SECONDS)
            assert await cluster.owner(second_id) == "n2"
            # the live call goes on: frames keep arriving on both sides, no reconnect
            before = (therapist.peer.received.video_frames, client.peer.received.video_frames)
            await until(
                lambda: (
                    therapist.peer.received.video_frames > before[0] + 30
                    and client.peer.received.video_frames > before[1] + 30
                ),
                lambda: (
                    "30 more frames on both sides while n1 drains: "
                    + media_report(therapist, client)
                ),
                MEDIA_SECONDS,
            )
            assert (therapist.joins, client.joins) == (1, 1), media_report(therapist, client)
            assert drained.process is not None and drained.process.poll() is None
            # the end of the call lets the node exit
            await therapist.send(type="end")
            status = await drained.wait(MEDIA_SECONDS)
            assert status == 0, drained.stderr()[-3000:]
            assert "drain_finished" in drained.stderr()
        finally:
            for page in pages:
                await page.stop()
