"""The relay against Debian's Janus echotest, in the same run, window by window.

This machine's speed drifts 2-3x within seconds, so one window is no figure. Here both servers
run at once, each pinned to CPU 0, behind the same veth pair, and the generator (pinned to
CPU 1) measures them in alternating windows: relay, Janus, Janus, relay, ... (the order flips
every repetition so neither always follows the other). Each row of the table is the median over
``--repeats`` windows per server, with the spread (min-max of the window figures), and the
ratio relay / Janus of the medians.

- **Network:** Janus ignores loopback when it gathers, so the benchmark creates a network
  namespace with a veth pair (private 10.x addresses inside the namespace and its peer only;
  nothing is routed anywhere else), starts Janus and the relay inside it, and removes both at
  the end. The generator stays in the root namespace.
- **Load:** ``relay_load.py``'s synthetic peers (aiortc for ICE + DTLS, then pre-protected SRTP
  sent on the nominated socket directly, 200 video + 50 audio packets/s per peer at 1x). The
  relay gets ``--rooms`` rooms of two peers (A's packets go to B and back); Janus gets the same
  number of peers, each in an echotest session (its packets come back to itself). Both forward
  the same packets per second.
- **CPU per forwarded packet:** utime + stime of the server process (all threads, from
  ``/proc/<pid>/stat``) over the window, divided by the packets that came back to the generator.
- **One-way delay:** the wall-clock time (``time.time_ns``) just before ``sendto`` to the
  kernel's receive timestamp (``SO_TIMESTAMPNS``) at the receiving socket: the generator's own
  scheduling after the packet arrived is not in it; the send side is stamped in user space just
  before the syscall, so the figure is an upper bound by the cost of one ``sendto``.
- **Loss:** packets sent in the window that had not come back 0.5 s after the last send.
- ``--find-max``: raises the rate by ``--step-factor`` for both servers (interleaved the same
  way) until a server's median window has loss or a p99 above ``--p99-bound-ms``; prints each
  server's highest sustained rate.

    PYTHONPATH=. .venv/bin/python benchmarks/relay_vs_janus.py                   # ~4 min
    PYTHONPATH=. .venv/bin/python benchmarks/relay_vs_janus.py --find-max         # ~5 min

Needs root (namespaces, veth) and ``apt-get install -y janus``.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import ctypes
import datetime
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import relay_load
from browser_traffic import build_browser_schedule, nack, rtx_payload_type
from receiving import SO_TIMESTAMPNS, drain
from relay_load import (
    AUDIO_PPS,
    GENERATOR_CPU,
    PAYLOAD_TAG,
    RELAY_CPU,
    VIDEO_PPS,
    Peer,
    build_schedule,
    close_peers,
    complete_extensions,
    plans_from_offer,
    process_cpu_seconds,
    take_over,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
CLONE_NEWNET = 0x40000000
JANUS_HTTP_PORT = 8088  # inside the benchmark's own namespace: nothing else can hold it
DRAIN_SECONDS = 0.5
CONNECT_TIMEOUT = 90.0
PLUGINS_FOLDER = "/usr/lib/x86_64-linux-gnu/janus"


# --- the namespace ---------------------------------------------------------------------------


@dataclass
class Namespace:
    """A network namespace joined to the root namespace by one veth pair."""

    name: str
    host_if: str
    inner_if: str
    host_ip: str
    inner_ip: str

    @classmethod
    def create(cls) -> Namespace:
        tag = uuid.uuid4().hex[:8]
        used = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
        for _ in range(100):  # a /30 in 10.200-250.x.x that no interface here uses yet
            a, b, c = random.randrange(200, 250), random.randrange(256), random.randrange(0, 256, 4)
            prefix = f"10.{a}.{b}."
            if prefix not in used:
                break
        else:
            raise RuntimeError("no free 10.x address block for the benchmark's namespace")
        ns = cls(f"szb{tag}", f"szh{tag}", f"szn{tag}", f"{prefix}{c + 1}", f"{prefix}{c + 2}")
        try:
            for command in (
                ["ip", "netns", "add", ns.name],
                ["ip", "link", "add", ns.host_if, "type", "veth", "peer", "name", ns.inner_if],
                ["ip", "link", "set", ns.inner_if, "netns", ns.name],
                ["ip", "addr", "add", f"{ns.host_ip}/30", "dev", ns.host_if],
                ["ip", "link", "set", ns.host_if, "up"],
                ["ip", "-n", ns.name, "addr", "add", f"{ns.inner_ip}/30", "dev", ns.inner_if],
                ["ip", "-n", ns.name, "link", "set", ns.inner_if, "up"],
                ["ip", "-n", ns.name, "link", "set", "lo", "up"],
            ):
                subprocess.run(command, check=True, capture_output=True)
        except Exception:
            ns.remove()
            raise
        return ns

    def remove(self) -> None:
        # deleting the namespace deletes its end of the veth pair, and with it the other end
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def enter_namespace(name: str) -> None:
    """Move the calling process into a named network namespace (Python 3.11 has no os.setns)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")
    finally:
        os.close(fd)


# --- the two servers -------------------------------------------------------------------------


def relay_in_namespace(conn: Connection, namespace: str, address: str, nice: int) -> None:
    enter_namespace(namespace)
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    relay_load.relay_process(conn, 40000, 40999, listen=address)


class RelayServer:
    name = "relay"

    def __init__(self, ns: Namespace, nice: int) -> None:
        self.handle = relay_load.RelayHandle(
            0, 0, target=relay_in_namespace, args=(ns.name, ns.inner_ip, nice)
        )
        self.pid = self.handle.pid

    async def connect(self, count: int) -> list[Peer]:
        peers = await relay_load.connect_rooms(self.handle, count // 2, same_ids=False)
        for peer in peers:
            peer.rtx_pt = rtx_payload_type(peer.offer)  # type: ignore[attr-defined]
        return peers

    async def close(self) -> None:
        await self.handle.close()


JANUS_CONFIG = """general: {{
    configs_folder = "{folder}"
    plugins_folder = "{lib}/plugins"
    transports_folder = "{lib}/transports"
    events_folder = "{lib}/events"
    loggers_folder = "{lib}/loggers"
    debug_level = 3
    session_timeout = 0
}}
media: {{
}}
nat: {{
    ice_enforce_list = "{interface}"
}}
plugins: {{
    disable = "{plugins}"
}}
transports: {{
    disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so,libjanus_websockets.so"
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
events: {{
    broadcast = false
}}
"""
JANUS_HTTP = """general: {{
    json = "compact"
    base_path = "/janus"
    http = true
    port = {port}
    https = false
}}
admin: {{
    admin_http = false
}}
"""


class JanusServer:
    """Debian's Janus in the namespace, echotest plugin, plain HTTP API, pinned to CPU 0."""

    name = "janus"

    def __init__(self, ns: Namespace, nice: int) -> None:
        janus = shutil.which("janus")
        if janus is None:
            raise SystemExit("janus is not installed: apt-get install -y janus")
        self.folder = Path(tempfile.mkdtemp(prefix="janus-bench-"))
        plugins = sorted(
            p.name
            for p in Path(PLUGINS_FOLDER, "plugins").glob("libjanus_*.so")
            if p.name != "libjanus_echotest.so"
        )
        (self.folder / "janus.jcfg").write_text(
            JANUS_CONFIG.format(
                folder=self.folder,
                lib=PLUGINS_FOLDER,
                interface=ns.inner_if,
                plugins=",".join(plugins),
            )
        )
        (self.folder / "janus.transport.http.jcfg").write_text(
            JANUS_HTTP.format(port=JANUS_HTTP_PORT)
        )
        (self.folder / "janus.plugin.echotest.jcfg").write_text("general: {\n}\n")
        self.log = open(self.folder / "janus.log", "w")  # noqa: SIM115 (lives as long as janus)
        self.process = subprocess.Popen(
            [
                *("ip", "netns", "exec", ns.name, "nice", "-n", str(nice)),
                *("taskset", "-c", str(RELAY_CPU), janus),
                *("-C", str(self.folder / "janus.jcfg"), "-F", str(self.folder), "-o"),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid  # ip netns exec, nice and taskset exec janus: same pid
        self.url = f"http://{ns.inner_ip}:{JANUS_HTTP_PORT}/janus"
        self.session: Any = None

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "transaction": uuid.uuid4().hex}
        async with self.session.post(self.url + path, json=body) as response:
            answer: dict[str, Any] = await response.json(content_type=None)
        if answer.get("janus") == "error":
            raise RuntimeError(f"janus: {answer['error']}")
        return answer

    async def connect(self, count: int) -> list[Peer]:
        import aiohttp
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        self.session = aiohttp.ClientSession()
        deadline = time.monotonic() + 20
        while True:  # janus takes a moment to open its HTTP port
            try:
                await self._post("", {"janus": "info"})
                break
            except (aiohttp.ClientError, OSError) as exc:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"janus did not start; see {self.folder}/janus.log") from exc
                await asyncio.sleep(0.2)

        async def one(index: int) -> Peer:
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver("audio", direction="sendrecv")
            pc.addTransceiver("video", direction="sendrecv")
            await pc.setLocalDescription(await pc.createOffer())
            offer = complete_extensions(pc.localDescription.sdp, 0)
            peer = Peer(room=index, seat="echo", pc=pc, offer=offer, plans=plans_from_offer(offer))
            peer.rtx_pt = rtx_payload_type(offer)  # type: ignore[attr-defined]
            session = (await self._post("", {"janus": "create"}))["data"]["id"]
            handle = (
                await self._post(
                    f"/{session}", {"janus": "attach", "plugin": "janus.plugin.echotest"}
                )
            )["data"]["id"]
            await self._post(
                f"/{session}/{handle}",
                {
                    "janus": "message",
                    "body": {"audio": True, "video": True},
                    "jsep": {"type": "offer", "sdp": offer},
                },
            )
            until = time.monotonic() + 30
            while time.monotonic() < until:  # the answer comes as an event: long poll
                async with self.session.get(f"{self.url}/{session}?maxev=1") as response:
                    event = await response.json(content_type=None)
                jsep = event.get("jsep")
                if jsep and jsep.get("type") == "answer":
                    await pc.setRemoteDescription(
                        RTCSessionDescription(sdp=jsep["sdp"], type="answer")
                    )
                    return peer
            raise RuntimeError("janus sent no answer within 30 s")

        peers = []
        for batch in range(0, count, 10):
            peers += await asyncio.gather(*(one(i) for i in range(batch, min(count, batch + 10))))
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while not all(p.pc.connectionState == "connected" for p in peers):
            if time.monotonic() > deadline:
                states = [p.pc.connectionState for p in peers]
                raise RuntimeError(
                    f"not all janus peers connected in {CONNECT_TIMEOUT} s: {states}"
                )
            await asyncio.sleep(0.2)
        for peer in peers:
            for transceiver in peer.pc.getTransceivers():
                await transceiver.sender.stop()
                await transceiver.receiver.stop()
            take_over(peer)
        return peers

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def srtp_profile(peer: Peer) -> str:
    dtls = peer.pc.getTransceivers()[0].receiver.transport
    return dtls._ssl.get_selected_srtp_profile().decode()


# --- one window ------------------------------------------------------------------------------


@dataclass
class Window:
    server: str
    multiplier: float
    offered_pps: float
    received_pps: float
    sent: int
    received: int
    loss: float
    cpu_fraction: float
    us_per_packet: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    generator_cpu_fraction: float
    server_core_busy: float
    pacer_max_lag_ms: float
    peers: int  # still connected at the start of the window
    nacked: int = 0  # browser traffic: video packets treated as lost and NACKed
    recovered: int = 0  # of those, retransmitted and arrived
    unstamped: int = 0  # arrivals without a kernel timestamp: should be 0


class KernelStampedReceiver:
    """Arrival bookkeeping for one window: the kernel's receive time of every packet.

    With ``injected_loss`` (browser traffic), that share of the video packets reaching a peer is
    treated as lost: a NACK goes back at once and the retransmission's arrival counts instead.
    """

    def __init__(self, count: int, step: int, injected_loss: float = 0.0) -> None:
        self.step = step
        self.arrived_ns = array.array("q", bytes(8 * count))
        self.unexpected = 0
        self.injected_loss = injected_loss
        self.nacked: set[int] = set()
        self.recovered = 0
        self.unstamped = 0  # arrivals without a kernel timestamp (stamped on reading)
        self.rng = random.Random(step)

    def on_rtp(self, peer: Peer, plain: bytes, header_end: int, arrival_ns: float) -> None:
        """``arrival_ns``: the kernel's receive time (``SO_TIMESTAMPNS``), 0 if it gave none."""
        pt = plain[1] & 0x7F
        if pt == getattr(peer, "rtx_pt", None):
            header_end += 2  # RFC 4588: the original sequence number comes first
        if len(plain) < header_end + PAYLOAD_TAG.size:
            self.unexpected += 1
            return
        number, packet_step = PAYLOAD_TAG.unpack_from(plain, header_end)
        arrived = self.arrived_ns
        if packet_step != self.step or number >= len(arrived) or arrived[number]:
            self.unexpected += 1
            return
        if pt == peer.plans["video"].payload_type:
            seq, ssrc = struct.unpack_from("!H4xI", plain, 2)
            peer.seen_video_ssrc, peer.highest_seq = ssrc, seq  # type: ignore[attr-defined]
            if self.injected_loss and self.rng.random() < self.injected_loss:
                self.nacked.add(number)
                report = nack(peer.plans["video"].ssrc, ssrc, seq)
                with contextlib.suppress(OSError):
                    peer.sock.sendto(peer.tx.protect_rtcp(report), peer.remote_addr)
                return
        elif number in self.nacked:
            self.recovered += 1
        if not arrival_ns:
            self.unstamped += 1
            arrival_ns = time.time_ns()
        arrived[number] = int(arrival_ns)

    def on_bad(self) -> None:
        self.unexpected += 1


def core_busy_seconds(cpu: int) -> float:
    return relay_load.cpu_busy_seconds()[cpu]


async def run_window(
    server_name: str,
    pid: int,
    peers: list[Peer],
    multiplier: float,
    warmup: float,
    measure: float,
    step: int,
    tick: float,
    traffic: str = "even",
    injected_loss: float = 0.0,
) -> Window:
    # a peer whose connection died (its consent checks failed) is left out, and counted
    peers = [p for p in peers if p.pc.connectionState == "connected" and p.sock.fileno() >= 0]
    if not peers:  # every connection died: a row of NaN says so, the run goes on
        nan = float("nan")
        return Window(
            server_name, multiplier, 0, 0, 0, 0, 1.0, nan, nan, nan, nan, nan, nan, nan, 0, 0
        )
    if traffic == "browser":
        schedule = build_browser_schedule(peers, multiplier, warmup, measure, step)
    else:
        schedule = build_schedule(peers, multiplier, warmup, measure, step)
    receiver = KernelStampedReceiver(len(schedule.packets), step, injected_loss)
    loop = asyncio.get_running_loop()
    for peer in peers:
        on_rtp = partial(receiver.on_rtp, peer)
        loop._add_reader(peer.fd, drain, peer, on_rtp, receiver.on_bad, True)  # type: ignore[attr-defined]
    sent_ns = array.array("q", bytes(8 * len(schedule.packets)))
    times, owners, packets = schedule.times, schedule.peers, schedule.packets
    total = len(packets)
    marks: dict[str, tuple[float, float, float, float]] = {}

    def mark() -> tuple[float, float, float, float]:
        return (
            time.perf_counter(),
            process_cpu_seconds(pid),
            process_cpu_seconds(os.getpid()),
            core_busy_seconds(RELAY_CPU),
        )

    max_lag = 0.0
    start = time.perf_counter() + 0.05
    i = 0
    while i < total:
        now = time.perf_counter() - start
        if times[i] <= now:
            max_lag = max(max_lag, now - times[i])
        while i < total and times[i] <= now:
            if i == schedule.measure_from:
                marks["start"] = mark()
            peer = owners[i]
            packet = packets[i]
            if not packet[0]:  # browser traffic's RTCP: protected now, in send order
                packet = peer.tx.protect_rtcp(packet[1:])
            else:
                sent_ns[i] = time.time_ns()
            with contextlib.suppress(OSError):
                peer.sock.sendto(packet, peer.remote_addr)
            i += 1
        await asyncio.sleep(tick)
    marks["end"] = mark()
    await asyncio.sleep(DRAIN_SECONDS)
    for peer in peers:
        loop._remove_reader(peer.fd)  # type: ignore[attr-defined]

    lo, hi = schedule.measure_from, schedule.measure_to
    arrived = receiver.arrived_ns
    delays = sorted(arrived[n] - sent_ns[n] for n in range(lo, hi) if arrived[n])
    sent, received = sum(1 for n in range(lo, hi) if sent_ns[n]), len(delays)
    (t0, cpu0, own0, busy0), (t1, cpu1, own1, busy1) = marks["start"], marks["end"]
    seconds = t1 - t0

    def pct(q: float) -> float:
        if not delays:
            return float("nan")
        return delays[min(int(q * len(delays)), len(delays) - 1)] / 1e6

    return Window(
        server=server_name,
        multiplier=multiplier,
        offered_pps=sent / measure,
        received_pps=received / measure,
        sent=sent,
        received=received,
        loss=1 - received / sent if sent else 0.0,
        cpu_fraction=(cpu1 - cpu0) / seconds,
        us_per_packet=(cpu1 - cpu0) / received * 1e6 if received else float("nan"),
        p50_ms=pct(0.5),
        p99_ms=pct(0.99),
        max_ms=delays[-1] / 1e6 if delays else float("nan"),
        generator_cpu_fraction=(own1 - own0) / seconds,
        server_core_busy=(busy1 - busy0) / seconds,
        pacer_max_lag_ms=max_lag * 1000,
        peers=len(peers),
        nacked=len([n for n in receiver.nacked if lo <= n < hi]),
        recovered=receiver.recovered,
        unstamped=receiver.unstamped,
    )


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Row:
    """Median and spread over one rate's windows, per server."""

    multiplier: float
    offered_pps: float
    figures: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def median(self, server: str, key: str) -> float:
        values = [v for v in self.figures[server][key] if v == v]  # drop NaN
        return statistics.median(values) if values else float("nan")

    def spread(self, server: str, key: str) -> tuple[float, float]:
        values = [v for v in self.figures[server][key] if v == v]
        return (min(values), max(values)) if values else (float("nan"), float("nan"))


KEYS = (
    "peers",
    "us_per_packet",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "loss",
    "received_pps",
    "cpu_fraction",
)


async def measure_rate(
    servers: list[tuple[Any, list[Peer]]],
    multiplier: float,
    args: argparse.Namespace,
    windows: list[Window],
    step_base: int,
) -> Row:
    row = Row(multiplier=multiplier, offered_pps=0.0)
    for server, _ in servers:
        row.figures[server.name] = {key: [] for key in KEYS}
    for repeat in range(args.repeats):
        order = servers if repeat % 2 == 0 else servers[::-1]
        for server, peers in order:
            window = await run_window(
                server.name,
                server.pid,
                peers,
                multiplier,
                args.warmup,
                args.measure,
                step_base + repeat * 2 + (order.index((server, peers))),
                args.tick_ms / 1000,
                args.traffic,
                args.injected_loss if args.traffic == "browser" else 0.0,
            )
            windows.append(window)
            row.offered_pps = window.offered_pps
            for key in KEYS:
                row.figures[server.name][key].append(getattr(window, key))
            print(
                f"  x{multiplier:.2f} {server.name:>5}: {window.received_pps:,.0f} pkt/s, "
                f"{window.us_per_packet:.1f} us/pkt, p99 {window.p99_ms:.2f} ms, "
                f"loss {window.loss:.3%}, gen CPU {window.generator_cpu_fraction:.0%}, "
                f"CPU 0 busy {window.server_core_busy:.0%}, {window.peers} peers, "
                f"{window.unstamped} unstamped"
                + (f", NACKed {window.nacked}, resent {window.recovered}" if window.nacked else ""),
                file=sys.stderr,
            )
    return row


def sustained(row: Row, server: str, bound_ms: float) -> bool:
    return row.median(server, "loss") == 0 and row.median(server, "p99_ms") <= bound_ms


def format_rows(rows: list[Row]) -> str:
    header = (
        f"{'rate':>6} {'pkt/s':>7} | {'relay us/pkt':>19} | {'janus us/pkt':>19} | {'ratio':>5} | "
        f"{'p50 ms r/j':>11} | {'p99 ms r/j':>13} | {'max ms r/j':>15} | {'loss r/j':>15} | "
        f"{'peers r/j':>9}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:

        def cell(server: str, key: str, fmt: str, row: Row = row) -> str:
            lo, hi = row.spread(server, key)
            return f"{row.median(server, key):{fmt}} ({lo:{fmt}}-{hi:{fmt}})"

        ratio = row.median("relay", "us_per_packet") / row.median("janus", "us_per_packet")
        lines.append(
            f"{row.multiplier:>5.2f}x {row.offered_pps:>7,.0f} | "
            f"{cell('relay', 'us_per_packet', '5.1f'):>19} | "
            f"{cell('janus', 'us_per_packet', '5.1f'):>19} | {ratio:>5.2f} | "
            f"{row.median('relay', 'p50_ms'):>5.2f}/{row.median('janus', 'p50_ms'):<5.2f} | "
            f"{row.median('relay', 'p99_ms'):>6.2f}/{row.median('janus', 'p99_ms'):<6.2f} | "
            f"{row.median('relay', 'max_ms'):>7.1f}/{row.median('janus', 'max_ms'):<7.1f} | "
            f"{row.median('relay', 'loss'):>7.3%}/{row.median('janus', 'loss'):<7.3%} | "
            f"{min(row.figures['relay']['peers']):>4.0f}/{min(row.figures['janus']['peers']):<4.0f}"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import aioice.ice

    ns = Namespace.create()
    servers: list[Any] = []
    peers: list[list[Peer]] = []
    windows: list[Window] = []
    rows: list[Row] = []
    best: dict[str, float] = {}
    profiles: dict[str, str] = {}
    try:
        # the generator's candidates: its end of the veth pair only
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [ns.host_ip]
        relay, janus = RelayServer(ns, args.nice), JanusServer(ns, args.nice)
        servers = [relay, janus]
        count = args.rooms * 2
        for server in servers:
            started = time.monotonic()
            peers.append(await server.connect(count))
            profiles[server.name] = srtp_profile(peers[-1][0])
            print(
                f"  {server.name}: {count} peers connected in {time.monotonic() - started:.1f} s "
                f"({profiles[server.name]})",
                file=sys.stderr,
            )
        for server_peers in peers:
            for peer in server_peers:
                # the kernel's receive time, so the generator's own scheduling is not in the
                # delay; a buffer deep enough that a starved generator loses nothing itself
                peer.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                with contextlib.suppress(OSError):  # SO_RCVBUFFORCE: root may exceed rmem_max
                    peer.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
        pairs = list(zip(servers, peers, strict=True))
        step = 0
        if args.find_max:
            multiplier = args.start_multiplier
            alive = {s.name for s in servers}
            while alive and multiplier <= args.max_multiplier:
                row = await measure_rate(
                    [p for p in pairs if p[0].name in alive], multiplier, args, windows, step
                )
                step += 2 * args.repeats
                for name in list(alive):
                    if sustained(row, name, args.p99_bound_ms):
                        best[name] = row.median(name, "received_pps")
                    else:
                        alive.discard(name)
                for name in {s.name for s in servers} - set(row.figures):
                    row.figures[name] = {key: [float("nan")] for key in KEYS}
                rows.append(row)
                multiplier *= args.step_factor
        else:
            for multiplier in args.rates:
                rows.append(await measure_rate(pairs, multiplier, args, windows, step))
                step += 2 * args.repeats
        failures = await relay.handle.call("failures")
        generator_closed = {
            server.name: sum(p.pc.connectionState != "connected" for p in server_peers)
            for server, server_peers in pairs
        }
    finally:
        for server_peers in peers:
            await close_peers(server_peers)
        for server in servers:
            with contextlib.suppress(Exception):
                await server.close()
        ns.remove()
    return {
        "rows": rows,
        "windows": windows,
        "best": best,
        "profiles": profiles,
        "relay_failures": failures,
        "generator_peers_lost": generator_closed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=20, help="relay rooms; janus: 2x peers")
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[0.5, 1.0, 2.0], help="multipliers of 250 pkt/s"
    )
    parser.add_argument("--repeats", type=int, default=5, help="windows per server and rate")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--measure", type=float, default=3.0)
    parser.add_argument("--tick-ms", type=float, default=1.0)
    parser.add_argument(
        "--traffic",
        choices=["even", "browser"],
        default="even",
        help="even: relay_load.py's packets; browser: frames, keyframes, RTCP, NACKs "
        "(benchmarks/browser_traffic.py)",
    )
    parser.add_argument(
        "--injected-loss", type=float, default=0.01, help="browser traffic: video share NACKed"
    )
    parser.add_argument("--find-max", action="store_true")
    parser.add_argument("--start-multiplier", type=float, default=1.0)
    parser.add_argument("--step-factor", type=float, default=1.25)
    parser.add_argument("--max-multiplier", type=float, default=8.0)
    parser.add_argument("--repeats-find-max", type=int, default=3)
    parser.add_argument("--p99-bound-ms", type=float, default=20.0)
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling priority of the generator and both servers alike (e.g. -10 on a "
        "machine where other jobs run)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.find_max:
        args.repeats = args.repeats_find_max
    if os.geteuid() != 0:
        raise SystemExit("needs root: it creates a network namespace and a veth pair")
    # SIGTERM ends the run like Ctrl-C, so the namespace and Janus are still removed
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    os.sched_setaffinity(0, {GENERATOR_CPU})
    os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    started = time.monotonic()
    result = asyncio.run(run(args))
    elapsed = time.monotonic() - started

    per_peer = VIDEO_PPS + AUDIO_PPS
    print(
        f"relay vs janus echotest ({'find-max' if args.find_max else 'rates'}, "
        f"{args.traffic} traffic), "
        f"{args.rooms} relay rooms = {args.rooms * 2} janus echo peers, {per_peer} pkt/s per peer "
        f"at 1x, windows of {args.warmup:g}+{args.measure:g} s, {args.repeats} per server and "
        f"rate, interleaved; servers on CPU {RELAY_CPU}, generator on CPU {GENERATOR_CPU}; "
        f"SRTP: {result['profiles']}"
    )
    print(format_rows(result["rows"]))
    print(
        "us/pkt: median (min-max) over the windows; ratio = relay median / janus median; "
        "delay: time_ns before sendto -> SO_TIMESTAMPNS at the receiving socket"
    )
    if args.find_max:
        for name in ("relay", "janus"):
            value = result["best"].get(name)
            print(
                f"{name}: highest sustained (median window: 0 loss, p99 <= {args.p99_bound_ms:g} "
                f"ms): " + (f"{value:,.0f} pkt/s" if value else "none")
            )
        if result["best"].get("relay") and result["best"].get("janus"):
            print(f"ratio relay/janus: {result['best']['relay'] / result['best']['janus']:.2f}")
    # a leg that died is a result too: say why (issue #17 saw legs die under overload)
    print(
        f"relay legs at the end: {result['relay_failures']}; generator peers no longer "
        f"connected: {result['generator_peers_lost']}"
    )
    print(f"took {elapsed:.0f} s")
    name = "relay_vs_janus_find_max" if args.find_max else "relay_vs_janus"
    if args.traffic == "browser":
        name += "_browser"
    path = args.json or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "relay_vs_janus",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "profiles": result["profiles"],
        "best": result["best"],
        "relay_failures": result["relay_failures"],
        "generator_peers_lost": result["generator_peers_lost"],
        "windows": [asdict(w) for w in result["windows"]],
        "seconds": round(elapsed, 1),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
