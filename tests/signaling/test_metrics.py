"""Prometheus metrics: their own listener, the names the issue lists, and labels that never carry
personal data or ids, checked on the exposition after a whole call through the real relay."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from sfu import RelaySnapshot
from sfu.latency import LatencyHistogram
from signaling.app import create_app
from signaling.config import Config
from signaling.mail_sender import FAILURE_REASONS
from signaling.metrics import (
    KINDS,
    MAIL_KINDS,
    METRICS,
    REJECTION_REASONS,
    RETRANSMISSION_RESULTS,
    ROLES,
    LiveState,
    Metrics,
    serve_metrics,
)
from signaling.storage.sqlite import SqliteStorage
from tests.ports import PortRange
from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE, MediaPeer, use_loopback_only
from tests.signaling.api_server import ApiServer, media_config, write_config
from tests.signaling.test_ws_call import (
    Side,
    book,
    consenting_client,
    media_flows_both_ways,
    start_media,
)

LISTED = (
    "sprechzimmer_build_info",
    "sprechzimmer_rooms_active",
    "sprechzimmer_participants_active",
    "sprechzimmer_joins_total",
    "sprechzimmer_joins_rejected_total",
    "sprechzimmer_sessions_total",
    "sprechzimmer_session_duration_seconds_bucket",
    "sprechzimmer_join_to_media_seconds_bucket",
    "sprechzimmer_rtp_packets_forwarded_total",
    "sprechzimmer_rtp_bytes_forwarded_total",
    "sprechzimmer_rtp_packets_lost_total",
    "sprechzimmer_rtcp_pli_total",
    "sprechzimmer_rtcp_nack_total",
    "sprechzimmer_retransmissions_total",
    "sprechzimmer_forward_latency_seconds_bucket",
    "sprechzimmer_ice_failures_total",
    "sprechzimmer_dtls_failures_total",
    "sprechzimmer_consent_expiries_total",
    "sprechzimmer_udp_port_exhaustions_total",
    "sprechzimmer_websocket_connections_active",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
)

# Every label a sample may carry, and the values it may take. "le" is a histogram's bucket bound.
ALLOWED_LABELS = {
    "kind": set(KINDS) | set(MAIL_KINDS),
    "outcome": {"sent", *FAILURE_REASONS},
    "role": set(ROLES),
    "reason": set(REJECTION_REASONS),
    "result": set(RETRANSMISSION_RESULTS),
}


@dataclass
class Served:
    api: ApiServer
    app: web.Application
    metrics_url: str


@asynccontextmanager
async def serving_with_metrics(config: Config) -> AsyncIterator[Served]:
    """The app on 127.0.0.1 and its /metrics listener, both on free ports."""
    storage = await SqliteStorage.open(config.storage.sqlite_path)
    app = create_app(config, storage)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    metrics = None
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        metrics = await serve_metrics(app[METRICS], "127.0.0.1", 0)
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        metrics_url = f"http://127.0.0.1:{metrics.addresses[0][1]}/metrics"
        yield Served(ApiServer(url, config, storage, config.storage.sqlite_path), app, metrics_url)
    finally:
        if metrics is not None:
            await metrics.cleanup()
        await runner.cleanup()
        await storage.close()


@pytest.fixture
async def served(tmp_path: Path, udp_ports: PortRange) -> AsyncIterator[Served]:
    use_loopback_only()
    config = write_config(tmp_path, extra=media_config(udp_ports))
    async with serving_with_metrics(config) as served:
        await served.api.add_therapist("alice")
        yield served


async def scrape(url: str) -> tuple[str, str]:
    """The exposition text and its content type."""
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        return await response.text(), response.headers["Content-Type"]


async def scrape_until(
    url: str, done: Callable[[str], bool], what: str, timeout: float = 10.0
) -> str:
    """The first exposition for which ``done`` holds; an AssertionError naming ``what`` (and
    holding the last exposition) when none does within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done(text := (await scrape(url))[0]):
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}\n{text}")
        await asyncio.sleep(0.05)
    return text


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))]


async def test_metrics_are_served_in_prometheus_text_format_on_their_own_listener(served):
    text, content_type = await scrape(served.metrics_url)
    assert content_type.startswith("text/plain; version=")
    assert "sprechzimmer_joins_total" in text
    async with aiohttp.ClientSession() as http, http.get(f"{served.api.url}/metrics") as r:
        assert r.status == 404  # never on the public port


async def test_every_metric_the_issue_lists_is_exposed(served):
    text, _ = await scrape(served.metrics_url)
    names = {name for name, _ in samples(text)}
    assert set(LISTED) <= names, sorted(set(LISTED) - names)
    for family in text_string_to_metric_families(text):
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)


async def test_build_info_names_the_version_and_python(served):
    text, _ = await scrape(served.metrics_url)
    [(labels, one)] = [
        (dict(labels), v) for (name, labels), v in samples(text).items() if name.endswith("_info")
    ]
    assert one == 1.0 and set(labels) == {"version", "python"}


async def test_a_whole_call_is_counted_and_no_label_carries_personal_data_or_ids(served):
    api = served.api
    therapist, appointment_id, token = await book(api)
    display_name = "Kimberly Quaxley"
    client = await consenting_client(api, token, name=display_name)
    alice_peer, kim_peer = MediaPeer(RED_BLUE, tone=440), MediaPeer(GREEN_WHITE, tone=880)
    try:
        await therapist.connect()
        await therapist.send(type="join", appointment=appointment_id)
        await therapist.next("joined")
        await client.connect()
        await client.send(type="join", invite=token)
        await client.next("joined")
        await start_media(therapist, alice_peer)
        await start_media(client, kim_peer)
        await media_flows_both_ways(alice_peer, kim_peer)

        # join_to_media is observed by the consultation's own poll of the relay's counters
        during = await scrape_until(
            served.metrics_url,
            lambda t: value(t, "sprechzimmer_join_to_media_seconds_count") == 2,
            "join-to-media observed for both sides",
        )
        assert value(during, "sprechzimmer_rooms_active") == 1
        for role in ROLES:
            assert value(during, "sprechzimmer_participants_active", role=role) == 1
        assert value(during, "sprechzimmer_websocket_connections_active") == 2
        assert value(during, "sprechzimmer_media_connections_total") == 2

        await therapist.send(type="end")
        await therapist.next("ended")
    finally:
        await alice_peer.close()
        await kim_peer.close()
        await therapist.close()
        await client.close()

    after = await scrape_until(
        served.metrics_url,
        lambda t: (
            value(t, "sprechzimmer_session_duration_seconds_count") == 1
            and value(t, "sprechzimmer_rooms_active") == 0
        ),
        "the session's duration recorded and its room closed (just after both are told)",
    )
    assert value(after, "sprechzimmer_joins_total") == 2
    assert value(after, "sprechzimmer_sessions_total") == 1
    assert value(after, "sprechzimmer_rooms_active") == 0
    for kind in KINDS:  # a closed room's counts outlive it
        assert value(after, "sprechzimmer_rtp_packets_forwarded_total", kind=kind) > 0
        assert value(after, "sprechzimmer_rtp_bytes_forwarded_total", kind=kind) > 0

    for (name, labels), _ in samples(after).items():
        for label, label_value in labels:
            if label == "le" or name == "sprechzimmer_build_info":
                continue
            assert label_value in ALLOWED_LABELS.get(label, set()), (name, label, label_value)
    for secret in ("alice", display_name, "Kimberly", "Quaxley", token):
        assert secret not in after
    assert f'"{appointment_id}"' not in after  # no label holds the appointment's id


async def test_a_full_relay_refuses_a_new_room_saying_it_is_at_capacity(tmp_path, udp_ports):
    use_loopback_only()
    config = write_config(tmp_path, extra=media_config(udp_ports, "limits:\n  max_rooms: 1\n"))
    async with serving_with_metrics(config) as served:
        await served.api.add_therapist("alice")
        first, first_id, _ = await book(served.api)
        second, second_id, _ = await book(served.api)
        try:
            for side, appointment_id in ((first, first_id), (second, second_id)):
                await side.connect()
                await side.send(type="join", appointment=appointment_id)
                await side.next("joined")
            await first.send(type="offer", sdp="v=0\r\nnot usable\r\n")  # the room opens
            assert (await first.next("error"))["code"] == "invalid_offer"
            await second.send(type="offer", sdp="v=0\r\nnot usable\r\n")
            error = await second.next("error")
            assert error["code"] == "relay_unavailable"
            assert "at capacity" in error["message"]
            assert not second.ws.closed  # the browser may try again on the same socket
        finally:
            await first.close()
            await second.close()
        text, _ = await scrape(served.metrics_url)
    assert value(text, "sprechzimmer_joins_rejected_total", reason="capacity") == 1


async def test_a_refused_join_is_counted_under_its_protocol_code(served):
    _, appointment_id, _ = await book(served.api)
    stranger = Side(served.api.client())
    try:
        await stranger.connect()
        await stranger.send(type="join", appointment=appointment_id)
        assert (await stranger.next("error"))["code"] == "unauthorized"
    finally:
        await stranger.close()
    text, _ = await scrape(served.metrics_url)
    assert value(text, "sprechzimmer_joins_rejected_total", reason="unauthorized") == 1
    assert value(text, "sprechzimmer_joins_rejected_total", reason="full") == 0


def test_a_reason_outside_the_fixed_set_is_counted_as_other():
    metrics = Metrics()
    metrics.reject("Kimberly Quaxley")
    text = metrics.exposition().decode()
    assert value(text, "sprechzimmer_joins_rejected_total", reason="other") == 1
    assert "Kimberly" not in text


def test_forward_latency_is_a_cumulative_histogram_of_the_relays_samples():
    histogram = LatencyHistogram()
    for seconds in (0.00005, 0.0003, 0.0003, 0.004, 1.0):
        histogram.observe(seconds)
    metrics = Metrics()
    metrics.watch_live(lambda: LiveState(RelaySnapshot(latency=histogram.snapshot())))
    text = metrics.exposition().decode()
    bucket = "sprechzimmer_forward_latency_seconds_bucket"
    assert value(text, bucket, le="0.0001") == 1
    assert value(text, bucket, le="0.0005") == 3
    assert value(text, bucket, le="0.005") == 4
    assert value(text, bucket, le="0.25") == 4
    assert value(text, bucket, le="+Inf") == 5
    assert value(text, "sprechzimmer_forward_latency_seconds_count") == 5
    assert value(text, "sprechzimmer_forward_latency_seconds_sum") == pytest.approx(1.00465)


def test_metrics_of_separate_apps_do_not_share_a_registry():
    first, second = Metrics(), Metrics()
    first.joins.inc()
    assert value(first.exposition().decode(), "sprechzimmer_joins_total") == 1
    assert value(second.exposition().decode(), "sprechzimmer_joins_total") == 0


async def test_every_metric_the_example_alerts_use_is_exposed(served):
    rules = (Path(__file__).parents[2] / "docs" / "prometheus" / "alerts.yml").read_text()
    used = set(re.findall(r"\bsprechzimmer_\w+", rules))
    text, _ = await scrape(served.metrics_url)
    names = {name for name, _ in samples(text)}
    assert used and used <= names, sorted(used - names)


async def test_the_event_loops_task_count_is_exposed(served):
    text, _ = await scrape(served.metrics_url)
    assert value(text, "sprechzimmer_asyncio_tasks") >= 1
