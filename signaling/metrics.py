"""Prometheus metrics: what the signaling side counts, and the relay's counters read at scrape time.

Every app has its own ``CollectorRegistry`` (never the global one), so tests can run many apps in
one process. ``/metrics`` is served on its own listener (``metrics.listen``), never on the public
port.

Two kinds of metric live here:

- Events of the signaling side (joins, refusals, sessions, the time from join to media) are
  ordinary prometheus-client counters and histograms; each happens once per join or session.
- The relay's media counters are plain ints on its hot path. ``LiveCollector`` asks for a
  ``LiveState`` only when Prometheus scrapes: the relay's ``sfu.RelaySnapshot`` (copied then, so
  forwarding a packet costs no more than before) and how many people sit in rooms.

This module imports nothing else of ``signaling``: whoever builds the app hands it the live state
(``relay_setup.live_state``), so metrics and the consultations that count into it form no circle.

No label carries personal data or an id: every label value comes from a fixed set below, and
``Metrics.reject`` folds anything unexpected into ``other``. A test checks the exposition.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from sfu import ForwardingCounts, LatencySnapshot, RelaySnapshot
from signaling.mail_sender import FAILURE_REASONS

__all__ = [
    "KINDS",
    "MAIL_KINDS",
    "METRICS",
    "REJECTION_REASONS",
    "RETRANSMISSION_RESULTS",
    "ROLES",
    "ClusterNode",
    "LiveCollector",
    "LiveState",
    "Metrics",
    "serve_metrics",
]

PREFIX = "sprechzimmer_"
MAIL_KINDS = ("invitation", "reminder")

ROLES = ("therapist", "client")
KINDS = ("audio", "video")
RETRANSMISSION_RESULTS = ("hit", "miss")
# The refusal codes of docs/protocol.md, plus "capacity" (relay_unavailable because
# limits.max_rooms is reached) and "other", which should stay at zero.
REJECTION_REASONS = (
    "unauthorized",
    "full",
    "used",
    "expired",
    "cancelled",
    "rate_limited",
    "capacity",
    "relay_unavailable",
    "shutting_down",
    "other",
)

# Seconds from both people joining to media reaching a browser: ICE and DTLS take well under a
# second on a good network, several with TURN; beyond a minute the call did not start.
JOIN_TO_MEDIA_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0, 120.0)
# Seconds of a session: a therapy session is 50 minutes; short ones are aborted calls.
SESSION_BUCKETS = (60, 300, 600, 1200, 1800, 2700, 3300, 3900, 4500, 5400, 7200, 10800)


@dataclass(frozen=True)
class LiveState:
    """What a scrape reads of the live side."""

    relay: RelaySnapshot | None = None  # None before start-up and after shutdown
    seated: Mapping[str, int] = field(default_factory=dict)  # people in rooms, by role


@dataclass(frozen=True)
class ClusterNode:
    """One live node as the registry in Redis describes it (signaling/cluster/registry.py). The
    node id is the operator's name for a process or machine, never a person's."""

    node_id: str
    rooms: int
    capacity: int
    draining: bool


# A scrape waits this long for the cluster view; then it shows the last one it had.
CLUSTER_VIEW_SECONDS = 1.0


class Metrics:
    """One app's registry and the signaling side's metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._cluster_read: Callable[[], Awaitable[list[ClusterNode] | None]] | None = None
        self._cluster_view: list[ClusterNode] | None = None
        registry = self.registry
        ProcessCollector(registry=registry)
        Info(PREFIX + "build", "Version of Sprechzimmer and of Python.", registry=registry).info(
            {"version": _version(), "python": platform.python_version()}
        )
        self.joins = Counter(
            PREFIX + "joins", "Participants seated in a consultation room.", registry=registry
        )
        self.joins_rejected = Counter(
            PREFIX + "joins_rejected",
            "Joins and requests refused, by the protocol's error code.",
            ["reason"],
            registry=registry,
        )
        for reason in REJECTION_REASONS:
            self.joins_rejected.labels(reason)
        self.reconnects = Counter(
            PREFIX + "reconnects",
            "Joins to a seat that was taken before in the same consultation (a reload, a"
            " network change, another device).",
            registry=registry,
        )
        self.sessions = Counter(
            PREFIX + "sessions",
            "Sessions begun: therapist and client in the room together for the first time.",
            registry=registry,
        )
        self.session_duration = Histogram(
            PREFIX + "session_duration_seconds",
            "Length of ended sessions, from first together to last together.",
            buckets=SESSION_BUCKETS,
            registry=registry,
        )
        self.join_to_media = Histogram(
            PREFIX + "join_to_media_seconds",
            "From both participants being in the room to the first packet forwarded to each.",
            buckets=JOIN_TO_MEDIA_BUCKETS,
            registry=registry,
        )
        self.mails = Counter(
            PREFIX + "mails",
            "Invitation and reminder e-mails the SMTP server took (outcome sent), or why not.",
            ["kind", "outcome"],
            registry=registry,
        )
        for kind in MAIL_KINDS:
            for outcome in ("sent", *FAILURE_REASONS):
                self.mails.labels(kind, outcome)
        self.websocket_connections = Gauge(
            PREFIX + "websocket_connections_active",
            "Open signaling WebSockets.",
            registry=registry,
        )

    def mail(self, kind: str, outcome: str) -> None:
        """Count one mail of `kind` (MAIL_KINDS): "sent" or a `MailNotSent.reason`."""
        known = outcome == "sent" or outcome in FAILURE_REASONS
        self.mails.labels(kind, outcome if known else "smtp_error").inc()

    def reject(self, reason: str) -> None:
        self.joins_rejected.labels(reason if reason in REJECTION_REASONS else "other").inc()

    def watch_live(self, live: Callable[[], LiveState]) -> None:
        """Ask ``live`` for the relay's snapshot and the rooms' occupancy at each scrape."""
        self.registry.register(LiveCollector(live))

    def watch_cluster(self, read: Callable[[], Awaitable[list[ClusterNode] | None]]) -> None:
        """In a cluster: the view of every live node, read (async) before each scrape; None
        when Redis does not answer, which the scrape shows as no view rather than zero nodes."""
        self._cluster_read = read
        self.registry.register(_ClusterCollector(lambda: self._cluster_view))

    async def scrape(self) -> bytes:
        """The exposition, with the cluster view read just before."""
        read = self._cluster_read
        if read is not None:
            with contextlib.suppress(TimeoutError):
                self._cluster_view = await asyncio.wait_for(read(), CLUSTER_VIEW_SECONDS)
        return self.exposition()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _ClusterCollector(Collector):
    """The cluster view: nodes alive and each node's rooms, capacity and draining flag, so one
    scrape of any node shows where the rooms are."""

    def __init__(self, view: Callable[[], list[ClusterNode] | None]) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        nodes = self._view()
        if nodes is None:
            return
        yield GaugeMetricFamily(
            PREFIX + "cluster_nodes_alive",
            "Nodes with a live registry entry (heartbeat within the TTL).",
            value=len(nodes),
        )
        families = {
            "rooms": GaugeMetricFamily(
                PREFIX + "cluster_node_rooms", "Rooms open on each node.", labels=["node"]
            ),
            "capacity": GaugeMetricFamily(
                PREFIX + "cluster_node_capacity", "Each node's limits.max_rooms.", labels=["node"]
            ),
            "draining": GaugeMetricFamily(
                PREFIX + "cluster_node_draining",
                "1 while a node drains (takes no new rooms).",
                labels=["node"],
            ),
        }
        for node in nodes:
            families["rooms"].add_metric([node.node_id], node.rooms)
            families["capacity"].add_metric([node.node_id], node.capacity)
            families["draining"].add_metric([node.node_id], int(node.draining))
        yield from families.values()


METRICS = web.AppKey("metrics", Metrics)


class LiveCollector(Collector):
    """The relay's counters and the rooms' occupancy, read when Prometheus scrapes."""

    def __init__(self, live: Callable[[], LiveState]) -> None:
        self._live = live

    def collect(self) -> Iterator[Metric]:
        live = self._live()
        participants = GaugeMetricFamily(
            PREFIX + "participants_active", "People in consultation rooms.", labels=["role"]
        )
        for role in ROLES:
            participants.add_metric([role], live.seated.get(role, 0))
        yield participants
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:
            tasks = None  # scraped outside the event loop's thread
        if tasks is not None:
            # a slow leak of tasks (per room, per socket) shows here long before memory does
            yield GaugeMetricFamily(
                PREFIX + "asyncio_tasks", "Tasks on the event loop.", value=tasks
            )
        relay = live.relay
        if relay is None:
            return  # before start-up and after shutdown: only what the signaling side knows
        yield GaugeMetricFamily(
            PREFIX + "rooms_active", "Rooms open in the media relay.", value=len(relay.rooms)
        )
        yield from _forwarding(relay.forwarded)
        for name, text, value in (
            (
                "media_connections",
                "Peer connections that reached connected.",
                relay.legs_connected,
            ),
            ("ice_failures", "Peer connections whose ICE failed.", relay.ice_failures),
            (
                "dtls_failures",
                "Peer connections whose DTLS handshake failed.",
                relay.dtls_failures,
            ),
            (
                "consent_expiries",
                "Connected peer connections closed because the browser stopped answering ICE "
                "consent checks for 30 s (RFC 7675).",
                relay.consent_expiries,
            ),
            (
                "udp_port_exhaustions",
                "Times a peer connection found no free port in the UDP range.",
                relay.port_exhaustions,
            ),
        ):
            yield CounterMetricFamily(PREFIX + name, text, value=value)
        yield _latency_histogram(relay.latency)


def _forwarding(totals: ForwardingCounts) -> Iterator[Metric]:
    packets = CounterMetricFamily(
        PREFIX + "rtp_packets_forwarded", "RTP packets forwarded.", labels=["kind"]
    )
    octets = CounterMetricFamily(
        PREFIX + "rtp_bytes_forwarded", "RTP bytes forwarded, before SRTP.", labels=["kind"]
    )
    packets.add_metric(["audio"], totals.audio_packets)
    packets.add_metric(["video"], totals.video_packets)
    octets.add_metric(["audio"], totals.audio_bytes)
    octets.add_metric(["video"], totals.video_bytes)
    yield packets
    yield octets
    retransmissions = CounterMetricFamily(
        PREFIX + "retransmissions",
        "NACKed packets: resent from the relay's cache (hit) or asked of the sender (miss).",
        labels=["result"],
    )
    retransmissions.add_metric(["hit"], totals.retransmit_hits)
    retransmissions.add_metric(["miss"], totals.retransmit_misses)
    yield retransmissions
    for name, text, value in (
        ("rtp_packets_lost", "Packets lost between senders and the relay.", totals.packets_lost),
        ("rtp_packets_dropped", "Packets the relay could not route or parse.", totals.dropped),
        (
            "rtcp_pli",
            "Keyframe requests (PLI, FIR) received from receivers.",
            totals.keyframe_requests_received,
        ),
        (
            "rtcp_pli_sent",
            "Keyframe requests (PLI) sent to senders, rate-limited.",
            totals.keyframe_requests_sent,
        ),
        ("rtcp_nack", "NACK messages received from receivers.", totals.nacks_received),
    ):
        yield CounterMetricFamily(PREFIX + name, text, value=value)


def _latency_histogram(latency: LatencySnapshot) -> Metric:
    """The relay's per-bucket counts (the last is +Inf) as Prometheus' cumulative buckets."""
    buckets = []
    cumulative = 0
    for bound, count in zip((*latency.bounds, float("inf")), latency.counts, strict=True):
        cumulative += count
        buckets.append((_bound(bound), cumulative))
    return HistogramMetricFamily(
        PREFIX + "forward_latency_seconds",
        "Time packets spend in the relay, kernel receive to send; one packet in 32 is sampled.",
        buckets=buckets,
        sum_value=latency.sum,
    )


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def _version() -> str:
    try:
        return metadata.version("sprechzimmer")
    except metadata.PackageNotFoundError:
        return "unknown"


async def serve_metrics(metrics: Metrics, host: str, port: int) -> web.AppRunner:
    """Serve ``GET /metrics`` on its own listener; the caller cleans the runner up."""

    async def handle(request: web.Request) -> web.Response:
        response = web.Response(body=await metrics.scrape())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
