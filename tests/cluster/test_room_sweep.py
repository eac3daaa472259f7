"""The sweep of dead nodes' rooms (signaling/cluster/room_sweep.py): a live appointment whose
room's node was killed and whose people never come back returns to `scheduled` within the bound
and can be joined again (node processes, PostgreSQL, Redis); of two nodes sweeping at once, one
does; a room live on a node is never swept; the dashboards are told; and a room swept while its
node could not reach Redis writes its state again when Redis answers."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path

from signaling.cluster.room_sweep import RoomSweep, sweep_interval
from signaling.relay_setup import CONSULTATIONS
from signaling.storage import AppointmentState, Storage
from tests.cluster.node_processes import Page, node_cluster, until
from tests.cluster.nodes import Node, listening, node, two_nodes
from tests.cluster.test_calls_across_nodes import call_on_two_nodes, media_report
from tests.cluster.test_calls_across_nodes import postgres as postgres  # the fixtures, for pytest
from tests.cluster.test_calls_across_nodes import shared_db as shared_db
from tests.cluster.test_presence_across_nodes import CONFIG, same_browser, status
from tests.redis_server import RedisServer
from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE, use_loopback_only
from tests.signaling.test_ws_call import book as book_in_process
from tests.signaling.test_ws_call import consenting_client as consenting_in_process
from tests.signaling.test_ws_call import seated

DEADLINE_SECONDS = 20.0
# the node processes' cluster settings (tests/cluster/node_processes.py): TTL 2 s, interval 0.5 s
GRACE_SECONDS = 3.0
TTL_SECONDS = 2.0
SWEEP_INTERVAL_SECONDS = sweep_interval(0.5, GRACE_SECONDS)
SWEEP_BOUND_SECONDS = TTL_SECONDS + GRACE_SECONDS + 2 * SWEEP_INTERVAL_SECONDS


async def state_becomes(
    storage: Storage, appointment_id: int, state: AppointmentState, timeout: float
) -> float:
    """Seconds until the stored state is `state`; fails naming the state it stayed in."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while (stored := await storage.get_appointment(appointment_id)) is None or (
        stored.state is not state
    ):
        if loop.time() - start > timeout:
            raise AssertionError(f"still {stored.state if stored else None} after {timeout} s")
        await asyncio.sleep(0.1)
    return loop.time() - start


def sweep_of(each: Node) -> RoomSweep:
    """A sweep on the node's own parts that acts on the first pass (no grace), beside the app's."""
    return RoomSweep(each.cluster, each.api.storage, each.app[CONSULTATIONS], 0.0, 1.0)


async def left_live(each: Node, state: AppointmentState) -> int:
    """An appointment of alice's left `state` by a node that died: no room, no placement."""
    therapist = await each.api.storage.get_therapist("alice")
    assert therapist is not None
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    appointment = await each.api.storage.create_appointment(
        therapist_id=therapist.id,
        starts_at=start,
        duration_minutes=50,
        opens_at=start - dt.timedelta(minutes=15),
        valid_until=start + dt.timedelta(minutes=120),
        note=None,
        invite_token_hash=None,
    )
    await each.api.storage.update_appointment(appointment.id, state=state)
    return appointment.id


async def test_a_killed_nodes_room_nobody_rejoins_is_swept_back_and_can_be_joined_again(
    tmp_path: Path, shared_redis: RedisServer, key_prefix: str, shared_db
):
    use_loopback_only()
    dsn, storage = shared_db
    async with node_cluster(
        tmp_path,
        dsn,
        shared_redis,
        key_prefix,
        cluster_extra=f"  dead_room_grace_seconds: {GRACE_SECONDS}\n",
    ) as cluster:
        therapist, client, appointment_id = await call_on_two_nodes(cluster, "n1", "n1")
        pages = [therapist, client]
        try:
            await state_becomes(storage, appointment_id, AppointmentState.IN_CALL, 30.0)
            assert await cluster.owner(appointment_id) == "n1"
            for page in pages:
                page.stopped = True  # nobody comes back
            cluster.node("n1").kill()
            took = await state_becomes(
                storage, appointment_id, AppointmentState.SCHEDULED, SWEEP_BOUND_SECONDS + 5
            )
            print(f"kill -9 of the room's node to the appointment swept back: {took:.2f} s")
            survivor = cluster.node("n2")
            # the line comes after the placement is given back, which comes after the reset
            await until(
                lambda: "dead_room_swept" in survivor.stderr(),
                lambda: "n2 logged dead_room_swept: " + survivor.stderr()[-2000:],
                DEADLINE_SECONDS,
            )
            assert survivor.stderr().count("dead_room_swept") == 1, survivor.stderr()[-2000:]
            assert await cluster.owner(appointment_id) is None
            # and it can be joined again, on the node that is left
            again = [
                Page(
                    "therapist again",
                    therapist.http,
                    {"appointment": appointment_id},
                    lambda: survivor.url,
                    RED_BLUE,
                    440,
                ),
                Page(
                    "client again",
                    client.http,
                    {"invite": client.join["invite"]},
                    lambda: survivor.url,
                    GREEN_WHITE,
                    880,
                ),
            ]
            pages += again
            for page in again:
                page.start()
            await until(
                lambda: all(page.joins > 0 for page in again),
                lambda: "both joined again: " + media_report(*again),
                DEADLINE_SECONDS,
            )
            await state_becomes(storage, appointment_id, AppointmentState.IN_CALL, 10.0)
            assert await cluster.owner(appointment_id) == "n2"
        finally:
            for page in pages:
                await page.stop()


async def test_of_two_nodes_sweeping_the_same_room_at_once_one_does(
    shared_redis: RedisServer, cluster_config
):
    async with two_nodes(cluster_config, shared_redis, CONFIG, busy=None) as (a, b):
        appointment_id = await left_live(a, AppointmentState.IN_CALL)
        results = await asyncio.gather(sweep_of(a).sweep_once(), sweep_of(b).sweep_once())
        assert sorted(results) == [[], [appointment_id]]
        stored = await a.api.storage.get_appointment(appointment_id)
        assert stored is not None and stored.state is AppointmentState.SCHEDULED
        assert await a.cluster.placement.owner(appointment_id) is None  # given back


async def test_a_room_live_on_a_node_is_never_swept(shared_redis: RedisServer, cluster_config):
    async with two_nodes(cluster_config, shared_redis, CONFIG) as (a, b):
        therapist, appointment_id, token = await book_in_process(a.api)
        client = await consenting_in_process(b.api, token)
        try:
            await seated(client, invite=token)
            assert await a.cluster.placement.owner(appointment_id) == "node-b"
            assert await sweep_of(a).sweep_once() == []
            assert await sweep_of(b).sweep_once() == []
            stored = await a.api.storage.get_appointment(appointment_id)
            assert stored is not None and stored.state is AppointmentState.WAITING
        finally:
            await therapist.close()
            await client.close()


async def test_the_therapists_dashboard_is_told_the_swept_room_is_invited_again(
    shared_redis: RedisServer, cluster_config
):
    fast = {
        "heartbeat_interval_seconds": 0.5,
        "heartbeat_ttl_seconds": 1,
        "dead_room_grace_seconds": 1,
    }
    async with two_nodes(cluster_config, shared_redis, CONFIG, busy=None, **fast) as (a, b):
        therapist, _, _ = await book_in_process(a.api)
        dashboard = same_browser(therapist, b.api)
        try:
            await dashboard.connect()
            await dashboard.send(type="watch")
            appointment_id = await left_live(a, AppointmentState.WAITING)
            told = await status(dashboard, "invited")
            assert told == {
                "v": 1,
                "type": "status",
                "appointment": appointment_id,
                "state": "invited",
            }
            stored = await a.api.storage.get_appointment(appointment_id)
            assert stored is not None and stored.state is AppointmentState.SCHEDULED
        finally:
            await therapist.close()
            await dashboard.close()


async def test_a_room_swept_while_its_node_had_no_redis_writes_its_state_again(
    private_redis: RedisServer, cluster_config
):
    fast = {"heartbeat_interval_seconds": 0.5, "heartbeat_ttl_seconds": 2}
    async with node(cluster_config(private_redis, "node-a", CONFIG, **fast)) as a:
        await listening(a)
        await a.api.add_therapist("alice")
        therapist, appointment_id, token = await book_in_process(a.api)
        client = await consenting_in_process(a.api, token)
        try:
            await seated(client, invite=token)
            private_redis.stop()
            await until_true(lambda: not a.cluster.reachable, "node-a noticed Redis was gone")
            # what another node's sweep did meanwhile: no placement could be seen for the room
            assert await a.api.storage.reset_live_appointment(appointment_id)
            private_redis.start()
            await state_becomes(
                a.api.storage, appointment_id, AppointmentState.WAITING, DEADLINE_SECONDS
            )
        finally:
            await therapist.close()
            await client.close()


async def until_true(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(DEADLINE_SECONDS):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {DEADLINE_SECONDS} s: {what}") from None
