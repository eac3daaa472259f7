"""Load on a real ``Relay`` over 127.0.0.1: relay CPU per forwarded packet, loss and latency.

Two processes on the two cores:

- the relay (CPU 0): a ``Relay`` answering offers that arrive over a ``multiprocessing`` pipe,
  nothing else;
- the generator (CPU 1, this process): two synthetic peers per room. Each peer is an aiortc
  client that negotiates audio + video (no tracks, ``addTransceiver(..., "sendrecv")``) and
  completes offer/answer, ICE and DTLS with the relay. Then it leaves aiortc's media path: its
  RTP sender and receiver are stopped, the SRTP sessions and the nominated ICE pair's socket are
  taken from aiortc's private attributes, and it sends pre-built, pre-protected SRTP itself
  (200 video packets/s of 1100-byte payload + 50 audio packets/s of 100 bytes per peer, with the
  header-extension ids its offer announced) and reads its socket directly.

Every packet carries its number in the (encrypted) payload. The generator records the
``perf_counter`` time just before ``sendto`` and on arrival at the other peer's socket (after
unprotect), so "added latency" includes loopback and the generator's own scheduling delay, not
only the relay's. Relay CPU comes from ``/proc/<pid>/stat`` (utime + stime) over the measured
window, divided by the packets the relay's forwarders counted in that window.

By default the second seat of every room announces different header-extension ids (as a Chrome
talking to a Firefox would), so every packet takes the relay's extension-rewrite path;
``--same-ids`` measures the identity path instead.

    PYTHONPATH=. .venv/bin/python benchmarks/relay_load.py                 # N = 1, 10, 25, 50
    PYTHONPATH=. .venv/bin/python benchmarks/relay_load.py --rooms 10 --measure 5
    PYTHONPATH=. .venv/bin/python benchmarks/relay_load.py --find-max --rooms 25
    PYTHONPATH=. .venv/bin/python benchmarks/relay_load.py --rooms 50 --profile
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import cProfile
import datetime
import io
import itertools
import json
import multiprocessing
import os
import platform
import pstats
import random
import re
import socket
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from receiving import drain
from rtp_packets import (
    ABS_SEND_TIME_URI,
    AUDIO_LEVEL_URI,
    MID_URI,
    TRANSPORT_CC_URI,
    browser_extension_block,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RELAY_CPU, GENERATOR_CPU = 0, 1
PORT_MIN, PORT_MAX = 43000, 43999  # away from the tests' 41000-41099
VIDEO_PPS, AUDIO_PPS = 200, 50
VIDEO_PAYLOAD_BYTES, AUDIO_PAYLOAD_BYTES = 1100, 100
TICK = 0.005  # the pacer sends whatever is due every 5 ms
DRAIN_SECONDS = 0.5  # after the last send, wait this long for packets still in flight
CONNECT_TIMEOUT = 90.0
SOCKET_BUFFER_BYTES = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")

# aiortc offers mid + audio level (audio) and mid + abs-send-time (video); browsers also send
# these, so the offer is completed with them (the relay forwards all four).
WANTED_EXTENSIONS = {
    "audio": (MID_URI, AUDIO_LEVEL_URI, ABS_SEND_TIME_URI, TRANSPORT_CC_URI),
    "video": (MID_URI, ABS_SEND_TIME_URI, TRANSPORT_CC_URI),
}
OTHER_BROWSER_ID_SHIFT = 7  # seat b's ids 1..5 become 8..12: still one-byte form, all different


# --- the relay process ---------------------------------------------------------------------


def relay_process(
    conn: Connection, port_min: int, port_max: int, listen: str = "127.0.0.1"
) -> None:
    """Entry point of the relay's process: pinned to CPU 0, serves requests until "close"."""
    os.sched_setaffinity(0, {RELAY_CPU})
    asyncio.run(_serve_relay(conn, port_min, port_max, listen))


async def _serve_relay(conn: Connection, port_min: int, port_max: int, listen: str) -> None:
    from sfu import Relay, RelayConfig

    relay = Relay(
        RelayConfig(udp_port_min=port_min, udp_port_max=port_max, listen_addresses=(listen,))
    )
    rooms: list[Any] = []
    profiler: cProfile.Profile | None = None
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def handle(request_id: int, command: str, args: tuple) -> None:
        nonlocal profiler
        result: Any = None
        try:
            if command == "room":
                rooms.append(relay.create_room())
                result = len(rooms) - 1
            elif command == "connect":
                room_index, seat, offer = args
                result = await rooms[room_index].connect(seat, offer)
            elif command == "states":
                result = [room.leg_state(seat) for room in rooms for seat in ("a", "b")]
            elif command == "counters":
                result = relay_counters(rooms)
                result["latency_counts"] = list(relay.snapshot().latency.counts)
            elif command == "failures":
                # why legs ended: the relay's own counters (consent, ICE, DTLS) and leg states
                snapshot = relay.snapshot()
                states = [room.leg_state(seat) for room in rooms for seat in ("a", "b")]
                result = {
                    "consent_expiries": snapshot.consent_expiries,
                    "ice_failures": snapshot.ice_failures,
                    "dtls_failures": snapshot.dtls_failures,
                    "legs_connected": states.count("connected"),
                    "legs": len(states),
                }
            elif command == "profile_start":
                profiler = cProfile.Profile()
                profiler.enable()
            elif command == "profile_stop":
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(args[0])
                    profiler = None
            elif command == "gc":
                # an experiment, not the relay's own setting: see --relay-gc
                import gc

                if args[0] == "freeze":
                    gc.collect()
                    gc.freeze()  # long-lived aiortc objects leave the collector's generations
                elif args[0] == "off":
                    gc.disable()
            elif command == "trace_start":
                import tracemalloc

                tracemalloc.start(args[0])
            elif command == "trace_top":
                # where the relay's Python memory sits, by the allocating line (room_memory.py)
                import gc
                import tracemalloc

                gc.collect()  # cyclic garbage (parsed SDP, handshakes) is not the room's
                snapshot = tracemalloc.take_snapshot()
                stats = snapshot.statistics(args[1])
                result = [
                    (stat.size, stat.count, [str(frame) for frame in stat.traceback])
                    for stat in stats[: args[0]]
                ]
            elif command == "close":
                await relay.close()
                done.set()
            else:
                raise ValueError(f"unknown command {command!r}")
            conn.send((request_id, True, result))
        except Exception as exc:
            conn.send((request_id, False, f"{type(exc).__name__}: {exc}"))

    tasks: set[asyncio.Task] = set()

    def readable() -> None:
        while conn.poll():
            try:
                request_id, command, args = conn.recv()
            except EOFError:  # the generator died: stop rather than linger
                done.set()
                loop.remove_reader(conn.fileno())
                return
            task = asyncio.ensure_future(handle(request_id, command, args))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    loop.add_reader(conn.fileno(), readable)
    await done.wait()
    loop.remove_reader(conn.fileno())
    if not relay.rooms:
        return
    await relay.close()


def relay_counters(rooms: list[Any]) -> dict[str, Any]:
    totals = {
        "forwarded": 0,
        "dropped": 0,
        "dropped_sends": 0,
        "forwarding_errors": 0,
        "routes": 0,
        "routes_rewriting": 0,  # routes whose header extensions are rebuilt per packet
    }
    for room in rooms:
        for forwarder in room.forwarders():
            tables = forwarder.route_tables()
            totals["routes"] += tables.media_routes + tables.rtx_routes
            totals["routes_rewriting"] += tables.rewriting_routes
            c = forwarder.counters
            totals["forwarded"] += c.video_packets + c.audio_packets
            totals["dropped"] += c.dropped
        for leg_stats in room.stats().values():
            totals["dropped_sends"] += leg_stats.dropped_sends
            totals["forwarding_errors"] += leg_stats.forwarding_errors
    return totals


class RelayHandle:
    """The generator's side of the pipe: requests with ids, answers matched to futures."""

    def __init__(self, port_min: int, port_max: int, target: Any = None, args: tuple = ()) -> None:
        """``target(conn, *args)`` replaces the default ``relay_process(conn, port_min, ...)``
        (relay_vs_janus.py starts the relay inside a network namespace)."""
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=target or relay_process,
            args=(child, *args) if target else (child, port_min, port_max),
            daemon=True,
        )
        self.process.start()
        child.close()
        self._ids = itertools.count()
        self._pending: dict[int, asyncio.Future] = {}
        loop = asyncio.get_running_loop()
        loop.add_reader(self._conn.fileno(), self._readable)

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def _readable(self) -> None:
        while self._conn.poll():
            try:
                request_id, ok, result = self._conn.recv()
            except EOFError:
                asyncio.get_running_loop().remove_reader(self._conn.fileno())
                for future in self._pending.values():
                    if not future.done():
                        future.set_exception(RuntimeError("relay process exited"))
                return
            future = self._pending.pop(request_id)
            if ok:
                future.set_result(result)
            else:
                future.set_exception(RuntimeError(result))

    async def call(self, command: str, *args: Any, timeout: float = 30.0) -> Any:
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._conn.send((request_id, command, args))
        return await asyncio.wait_for(future, timeout)

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        """VmRSS now: sampled at the window's start and end, for the growth rate."""
        return process_status_kib(self.pid, "VmRSS")

    def peak_rss_kib(self) -> int:
        return process_status_kib(self.pid, "VmHWM")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.call("close", timeout=20)
        asyncio.get_running_loop().remove_reader(self._conn.fileno())
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self._conn.close()


def cpu_busy_seconds() -> dict[int, float]:
    """Busy (non-idle, non-iowait) seconds per CPU from /proc/stat: shows other load on a core."""
    busy = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *values = line.split()
            if name.startswith("cpu") and name != "cpu":
                ticks = [int(v) for v in values[:8]]
                busy[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK
    return busy


def process_status_kib(pid: int, name: str) -> int:
    """A kB line of /proc/<pid>/status (``VmRSS``, ``VmHWM``); 0 if the kernel has none."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (fields 14 and 15, after the command name)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# --- synthetic peers -----------------------------------------------------------------------


def complete_extensions(sdp: str, id_shift: int) -> str:
    """The offer as a browser would send it: all wanted extensions, ids shifted by ``id_shift``."""
    sections = re.split(r"(?m)^(?=m=)", sdp)
    out = [sections[0]]
    for section in sections[1:]:
        kind = section[2:7]
        ids = {uri: int(i) for i, uri in re.findall(r"(?m)^a=extmap:(\d+) (\S+)\r?$", section)}
        for uri in WANTED_EXTENSIONS[kind]:
            if uri not in ids:
                ids[uri] = next(i for i in range(1, 15) if i not in ids.values())
        extmap = "".join(f"a=extmap:{i + id_shift} {uri}\r\n" for uri, i in ids.items())
        section = re.sub(r"(?m)^a=extmap:.*\r?\n", "", section)
        mid_at = re.search(r"(?m)^a=mid:", section).start()
        out.append(section[:mid_at] + extmap + section[mid_at:])
    return "".join(out)


@dataclass
class KindPlan:
    """What one peer sends for one kind: taken from its own (completed) offer."""

    payload_type: int
    ssrc: int
    ext_ids: dict[str, int]
    mid: str
    seq: int = 0
    ts: int = 0


def plans_from_offer(sdp: str) -> dict[str, KindPlan]:
    plans = {}
    for section in re.split(r"(?m)^(?=m=)", sdp)[1:]:
        kind = section[2:7]
        codec = "opus" if kind == "audio" else "VP8"
        pt = int(re.search(rf"(?m)^a=rtpmap:(\d+) {codec}/", section).group(1))
        ssrc = int(re.search(r"(?m)^a=ssrc:(\d+) ", section).group(1))
        mid = re.search(r"(?m)^a=mid:(\S+)", section).group(1)
        ext_ids = {uri: int(i) for i, uri in re.findall(r"(?m)^a=extmap:(\d+) (\S+)\r?$", section)}
        plans[kind] = KindPlan(pt, ssrc, ext_ids, mid, seq=random.randrange(1 << 16))
    return plans


def extension_block(plan: KindPlan, kind: str, index: int) -> bytes:
    return browser_extension_block(plan.ext_ids, plan.mid, kind, index)


PAYLOAD_TAG = struct.Struct("!IH")  # packet number within the step, step number
VIDEO_FILL = os.urandom(VIDEO_PAYLOAD_BYTES - PAYLOAD_TAG.size)
AUDIO_FILL = os.urandom(AUDIO_PAYLOAD_BYTES - PAYLOAD_TAG.size)


@dataclass
class Peer:
    """One synthetic participant: an aiortc connection used for ICE + DTLS only."""

    room: int
    seat: str
    pc: Any
    offer: str = ""
    plans: dict[str, KindPlan] = field(default_factory=dict)
    tx: Any = None
    rx: Any = None
    sock: socket.socket | None = None
    fd: int = -1
    protocol: Any = None  # aioice's protocol for the socket: STUN and DTLS go back to it
    remote_addr: tuple[str, int] = ("", 0)
    received: int = 0

    def build(self, kind: str, number: int, step: int) -> bytes:
        plan = self.plans[kind]
        plan.seq = (plan.seq + 1) & 0xFFFF
        plan.ts = (plan.ts + (450 if kind == "video" else 960)) & 0xFFFFFFFF
        header = struct.pack("!BBHII", 0x90, plan.payload_type, plan.seq, plan.ts, plan.ssrc)
        fill = VIDEO_FILL if kind == "video" else AUDIO_FILL
        body = extension_block(plan, kind, number) + PAYLOAD_TAG.pack(number, step) + fill
        return self.tx.protect(header + body)


async def make_peer(room: int, seat: str, same_ids: bool) -> Peer:
    from aiortc import RTCConfiguration, RTCPeerConnection

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="sendrecv")
    pc.addTransceiver("video", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    shift = 0 if same_ids or seat == "a" else OTHER_BROWSER_ID_SHIFT
    offer = complete_extensions(pc.localDescription.sdp, shift)
    return Peer(room=room, seat=seat, pc=pc, offer=offer, plans=plans_from_offer(offer))


def take_over(peer: Peer) -> None:
    """Leave aiortc's media path: SRTP sessions and the nominated pair's socket are ours now."""
    dtls = peer.pc.getTransceivers()[0].receiver.transport
    peer.tx, peer.rx = dtls._tx_srtp, dtls._rx_srtp
    pair = dtls.transport._connection._nominated[1]
    transport = pair.protocol.transport
    peer.remote_addr = pair.remote_addr
    peer.protocol = pair.protocol
    peer.fd = transport.get_extra_info("socket").fileno()
    peer.sock = socket.socket(fileno=os.dup(peer.fd))  # same socket, a real object for sendto
    peer.sock.setblocking(False)
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
    asyncio.get_running_loop()._remove_reader(peer.fd)  # type: ignore[attr-defined]


# --- one measured run ----------------------------------------------------------------------


@dataclass
class StepResult:
    rooms: int
    peers: int
    rate_multiplier: float
    offered_pps: float  # what the generator sent per second, all peers
    forwarded_pps: float  # what the relay forwarded per second (its own counters)
    received_pps: float
    sent: int
    received: int
    loss: float
    relay_cpu_fraction: float  # of one core, over the measured window
    relay_cpu_us_per_packet: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    generator_cpu_fraction: float
    pacer_max_lag_ms: float
    send_errors: int
    relay_dropped_sends: int
    relay_core_busy_fraction: float  # all of CPU 0's load: relay + other processes + softirq
    generator_core_busy_fraction: float
    relay_routes: int
    relay_routes_rewriting: int
    relay_peak_rss_mib: float = 0.0
    # the relay's own sampled delay, kernel receive -> send (bucket upper bounds, ms)
    relay_latency_p50_ms: float = 0.0
    relay_latency_p99_ms: float = 0.0
    # VmRSS at the window's start and end: growth per minute with media flowing
    relay_rss_start_mib: float = 0.0
    relay_rss_end_mib: float = 0.0


class Receiver:
    """Arrival bookkeeping for one step, shared by every peer's socket reader."""

    def __init__(self, count: int, step: int) -> None:
        self.step = step
        self.sent_at = array.array("d", bytes(8 * count))
        self.arrived_at = array.array("d", bytes(8 * count))
        self.unexpected = 0

    def on_rtp(self, peer: Peer, plain: bytes, header_end: int, arrival: float) -> None:
        """``arrival``: ``perf_counter`` just after the datagram was read (before unprotect)."""
        number, packet_step = PAYLOAD_TAG.unpack_from(plain, header_end)
        arrived_at = self.arrived_at
        if packet_step != self.step or number >= len(arrived_at) or arrived_at[number]:
            self.unexpected += 1
            return
        arrived_at[number] = arrival
        peer.received += 1

    def on_bad(self) -> None:
        self.unexpected += 1


@dataclass
class Schedule:
    times: list[float]
    peers: list[Peer]
    packets: list[bytes]
    measure_from: int  # first packet number of the measured window
    measure_to: int


def build_schedule(
    peers: list[Peer], multiplier: float, warmup: float, measure: float, step: int
) -> Schedule:
    """Every packet of the step, pre-built and pre-protected, in send order."""
    entries: list[tuple[float, int, str]] = []
    duration = warmup + measure
    for index, _peer in enumerate(peers):
        for kind, pps in (("video", VIDEO_PPS * multiplier), ("audio", AUDIO_PPS * multiplier)):
            interval = 1.0 / pps
            t = random.random() * interval  # peers are not in phase with each other
            while t < duration:
                entries.append((t, index, kind))
                t += interval
    entries.sort()
    times, owners, packets = [], [], []
    measure_from = measure_to = len(entries)
    for number, (t, index, kind) in enumerate(entries):
        if t >= warmup and measure_from == len(entries):
            measure_from = number
        times.append(t)
        owners.append(peers[index])
        packets.append(peers[index].build(kind, number, step))
    return Schedule(times, owners, packets, measure_from, measure_to)


async def run_step(
    relay: RelayHandle,
    peers: list[Peer],
    rooms: int,
    multiplier: float,
    warmup: float,
    measure: float,
    step: int,
    profile_path: Path | None = None,
) -> StepResult:
    schedule = build_schedule(peers, multiplier, warmup, measure, step)
    receiver = Receiver(len(schedule.packets), step)
    loop = asyncio.get_running_loop()
    for peer in peers:  # read the socket ourselves, draining it per wake-up like the relay
        on_rtp = partial(receiver.on_rtp, peer)
        loop._add_reader(peer.fd, drain, peer, on_rtp, receiver.on_bad)  # type: ignore[attr-defined]
    sent_at = receiver.sent_at
    times, owners, packets = schedule.times, schedule.peers, schedule.packets
    total = len(packets)
    send_errors = 0
    max_lag = 0.0
    window_start: dict[str, Any] = {}
    window_end: dict[str, Any] = {}

    async def mark(where: dict[str, Any]) -> None:
        where["counters"] = await relay.call("counters")
        where["cpu"] = relay.cpu_seconds()
        where["rss_kib"] = relay.rss_kib()
        where["own_cpu"] = process_cpu_seconds(os.getpid())
        where["cores"] = cpu_busy_seconds()
        where["time"] = time.perf_counter()

    marks: list[asyncio.Task] = []
    start = time.perf_counter() + 0.05
    i = 0
    while i < total:
        now = time.perf_counter() - start
        if i < total and times[i] <= now:
            max_lag = max(max_lag, now - times[i])
        while i < total and times[i] <= now:
            if i == schedule.measure_from:
                if profile_path is not None:
                    await relay.call("profile_start")
                marks.append(asyncio.ensure_future(mark(window_start)))
            peer = owners[i]
            sent_at[i] = time.perf_counter()
            try:
                peer.sock.sendto(packets[i], peer.remote_addr)
            except OSError:
                send_errors += 1
            i += 1
        await asyncio.sleep(TICK)
    marks.append(asyncio.ensure_future(mark(window_end)))
    await asyncio.gather(*marks)
    if profile_path is not None:
        await relay.call("profile_stop", str(profile_path))
    await asyncio.sleep(DRAIN_SECONDS)
    for peer in peers:
        loop._remove_reader(peer.fd)  # type: ignore[attr-defined]

    lo, hi = schedule.measure_from, schedule.measure_to
    arrived = receiver.arrived_at
    latencies = sorted(arrived[n] - sent_at[n] for n in range(lo, hi) if arrived[n])
    sent = hi - lo
    received = len(latencies)
    seconds = window_end["time"] - window_start["time"]
    forwarded = window_end["counters"]["forwarded"] - window_start["counters"]["forwarded"]
    cpu = window_end["cpu"] - window_start["cpu"]

    def core_busy(cpu: int) -> float:
        return (window_end["cores"][cpu] - window_start["cores"][cpu]) / seconds

    def pct(p: float) -> float:
        return (
            latencies[min(int(p * len(latencies)), len(latencies) - 1)] * 1000
            if latencies
            else float("nan")
        )

    return StepResult(
        rooms=rooms,
        peers=len(peers),
        rate_multiplier=multiplier,
        offered_pps=sent / measure,
        forwarded_pps=forwarded / seconds,
        received_pps=received / measure,
        sent=sent,
        received=received,
        loss=1 - received / sent if sent else 0.0,
        relay_cpu_fraction=cpu / seconds,
        relay_cpu_us_per_packet=cpu / forwarded * 1e6 if forwarded else float("nan"),
        latency_p50_ms=pct(0.50),
        latency_p99_ms=pct(0.99),
        latency_max_ms=latencies[-1] * 1000 if latencies else float("nan"),
        generator_cpu_fraction=(window_end["own_cpu"] - window_start["own_cpu"]) / seconds,
        pacer_max_lag_ms=max_lag * 1000,
        send_errors=send_errors,
        relay_dropped_sends=window_end["counters"]["dropped_sends"],
        relay_core_busy_fraction=core_busy(RELAY_CPU),
        generator_core_busy_fraction=core_busy(GENERATOR_CPU),
        relay_routes=window_end["counters"]["routes"],
        relay_routes_rewriting=window_end["counters"]["routes_rewriting"],
        relay_latency_p50_ms=relay_quantile_ms(window_start, window_end, 0.50),
        relay_latency_p99_ms=relay_quantile_ms(window_start, window_end, 0.99),
        relay_rss_start_mib=window_start["rss_kib"] / 1024,
        relay_rss_end_mib=window_end["rss_kib"] / 1024,
    )


async def connect_rooms(relay: RelayHandle, rooms: int, same_ids: bool) -> list[Peer]:
    """Two peers per room through offer/answer, ICE and DTLS; returns once all are connected."""
    peers: list[Peer] = []
    for _ in range(rooms):
        room = await relay.call("room")
        for seat in ("a", "b"):
            peers.append(await make_peer(room, seat, same_ids))

    async def join(peer: Peer) -> None:
        from aiortc import RTCSessionDescription

        answer = await relay.call("connect", peer.room, peer.seat, peer.offer, timeout=60)
        await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    for batch in range(0, len(peers), 10):  # a few DTLS handshakes at a time
        await asyncio.gather(*(join(p) for p in peers[batch : batch + 10]))
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while time.monotonic() < deadline:
        states = await relay.call("states")
        if all(s == "connected" for s in states) and all(
            p.pc.connectionState == "connected" for p in peers
        ):
            break
        await asyncio.sleep(0.2)
    else:
        raise RuntimeError(f"not all legs connected within {CONNECT_TIMEOUT:.0f} s: {states}")
    for peer in peers:
        for transceiver in peer.pc.getTransceivers():
            await transceiver.sender.stop()  # no RTP loop, no sender reports
            await transceiver.receiver.stop()  # no decoder, no receiver reports
        take_over(peer)
    return peers


async def close_peers(peers: list[Peer]) -> None:
    loop = asyncio.get_running_loop()
    for peer in peers:
        if peer.fd >= 0:
            loop._remove_reader(peer.fd)  # type: ignore[attr-defined]
        if peer.sock is not None:
            peer.sock.close()
    await asyncio.gather(*(p.pc.close() for p in peers), return_exceptions=True)


# --- modes ---------------------------------------------------------------------------------


async def sweep(args: argparse.Namespace) -> list[StepResult]:
    results = []
    for step, rooms in enumerate(args.rooms):
        relay = RelayHandle(PORT_MIN, PORT_MAX)
        peers: list[Peer] = []
        try:
            setup_started = time.monotonic()
            peers = await connect_rooms(relay, rooms, args.same_ids)
            setup = time.monotonic() - setup_started
            if args.relay_gc != "default":
                await relay.call("gc", args.relay_gc)
            profile = args.profile_out if args.profile else None
            result = await run_step(
                relay, peers, rooms, 1.0, args.warmup, args.measure, step, profile
            )
            result.relay_peak_rss_mib = relay.peak_rss_kib() / 1024
            results.append(result)
            print(f"  {rooms} rooms: connected in {setup:.1f} s; {short(result)}", file=sys.stderr)
        finally:
            await close_peers(peers)
            await relay.close()
    return results


async def find_max(args: argparse.Namespace) -> list[StepResult]:
    """Raise every peer's packet rate step by step until the relay loses packets."""
    rooms = args.rooms[0]
    relay = RelayHandle(PORT_MIN, PORT_MAX)
    peers: list[Peer] = []
    results: list[StepResult] = []
    try:
        peers = await connect_rooms(relay, rooms, args.same_ids)
        if args.relay_gc != "default":
            await relay.call("gc", args.relay_gc)
        multiplier = args.start_multiplier
        for step in range(args.max_steps):
            result = await run_step(
                relay, peers, rooms, multiplier, args.warmup, args.measure, step
            )
            result.relay_peak_rss_mib = relay.peak_rss_kib() / 1024
            results.append(result)
            print(f"  x{multiplier:.2f}: {short(result)}", file=sys.stderr)
            if not sustained(result) or result.generator_cpu_fraction > 0.9:
                break
            multiplier *= args.step_factor
    finally:
        await close_peers(peers)
        await relay.close()
    return results


def sustained(r: StepResult) -> bool:
    """No loss, and the relay kept up within the window instead of draining a backlog later."""
    return r.loss == 0 and r.forwarded_pps >= 0.98 * r.offered_pps


def relay_quantile_ms(start: dict[str, Any], end: dict[str, Any], q: float) -> float:
    """A quantile of the relay's own latency histogram over the window (upper bucket bound)."""
    from sfu.latency import BUCKETS

    counts = [
        b - a
        for a, b in zip(
            start["counters"]["latency_counts"], end["counters"]["latency_counts"], strict=True
        )
    ]
    total = sum(counts)
    if total == 0:
        return float("nan")
    seen = 0
    for index, n in enumerate(counts):
        seen += n
        if seen >= q * total and n:
            return BUCKETS[index] * 1000 if index < len(BUCKETS) else float("inf")
    return float("inf")


def short(r: StepResult) -> str:
    return (
        f"{r.forwarded_pps:,.0f} pkt/s forwarded, loss {r.loss:.4%}, relay CPU "
        f"{r.relay_cpu_fraction:.0%} = {r.relay_cpu_us_per_packet:.1f} us/pkt, "
        f"p99 {r.latency_p99_ms:.2f} ms, generator CPU {r.generator_cpu_fraction:.0%}, "
        f"{r.relay_routes_rewriting}/{r.relay_routes} routes rewrite extensions"
    )


def format_table(results: list[StepResult]) -> str:
    header = (
        f"{'rooms':>5} {'rate':>5} {'sent/s':>8} {'fwd/s':>8} {'loss':>8} {'relay CPU':>9} "
        f"{'us/pkt':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'relay p99':>9} {'RSS MiB':>7} "
        f"{'gen CPU':>7} {'cpu0':>5} {'cpu1':>5}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.rooms:>5} {r.rate_multiplier:>4.2f}x {r.offered_pps:>8,.0f} "
            f"{r.forwarded_pps:>8,.0f} {r.loss:>8.3%} {r.relay_cpu_fraction:>9.0%} "
            f"{r.relay_cpu_us_per_packet:>7.1f} {r.latency_p50_ms:>7.2f} {r.latency_p99_ms:>7.2f} "
            f"{r.latency_max_ms:>7.2f} {'<=' + format(r.relay_latency_p99_ms, '.2f'):>9} "
            f"{r.relay_peak_rss_mib:>7.0f} {r.generator_cpu_fraction:>7.0%} "
            f"{r.relay_core_busy_fraction:>5.0%} {r.generator_core_busy_fraction:>5.0%}"
        )
    return "\n".join(lines)


def print_profile(path: Path, top: int = 10) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rooms", type=int, nargs="+", default=[1, 10, 25, 50], help="room counts to sweep"
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--measure", type=float, default=10.0, help="measured seconds per step")
    parser.add_argument(
        "--same-ids", action="store_true", help="both seats use the same extension ids"
    )
    parser.add_argument(
        "--find-max", action="store_true", help="raise the rate until loss (first --rooms value)"
    )
    parser.add_argument(
        "--relay-gc",
        choices=["default", "freeze", "off"],
        default="default",
        help="experiment: gc.freeze() or gc.disable() in the relay once every leg is connected",
    )
    parser.add_argument(
        "--tick-ms",
        type=float,
        default=5.0,
        help="pacing granularity: every peer's due packets leave together each tick, so a "
        "coarse tick sends synchronised bursts that queue at the relay (browsers' pacers are "
        "not synchronised with each other)",
    )
    parser.add_argument("--start-multiplier", type=float, default=1.0)
    parser.add_argument("--step-factor", type=float, default=1.25)
    parser.add_argument("--max-steps", type=int, default=12)
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the relay over the measured window"
    )
    parser.add_argument("--profile-out", type=Path, default=Path("/tmp/relay_load.prof"))
    parser.add_argument("--json", type=Path, default=None, help="default: results/relay_load*.json")
    args = parser.parse_args()
    globals()["TICK"] = args.tick_ms / 1000  # read by run_step's pacer

    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # loopback only
    os.sched_setaffinity(0, {GENERATOR_CPU})
    started = time.monotonic()
    results = asyncio.run(find_max(args) if args.find_max else sweep(args))
    elapsed = time.monotonic() - started

    mode = "find-max" if args.find_max else "sweep"
    ids = "same ids" if args.same_ids else "rewritten ext ids"
    if args.relay_gc != "default":
        ids += f", relay gc {args.relay_gc}"
    print(
        f"relay load ({mode}, {ids}), warm-up {args.warmup:g} s, measured {args.measure:g} s, "
        f"{VIDEO_PPS}+{AUDIO_PPS} pkt/s per peer at 1x, relay on CPU {RELAY_CPU}, "
        f"generator on CPU {GENERATOR_CPU}, {os.cpu_count()} cores"
    )
    print(format_table(results))
    for r in results:
        print(
            f"{r.rooms} rooms: relay RSS {r.relay_rss_start_mib:.1f} -> {r.relay_rss_end_mib:.1f} "
            f"MiB over the {args.measure:g} s window "
            f"({(r.relay_rss_end_mib - r.relay_rss_start_mib) / args.measure * 60:+.2f} MiB/min)"
        )
    print("latency: generator perf_counter before sendto -> read at the other peer's socket;")
    print("includes loopback and the generator's own scheduling, not only the relay;")
    print("cpu0/cpu1: whole-core busy time (relay or generator + other processes + softirq)")
    if args.find_max:
        clean = [r for r in results if sustained(r)]
        best = max(clean, key=lambda r: r.forwarded_pps) if clean else None
        print(
            f"max sustained (0 loss, forwarded >= 98% of sent): {best.forwarded_pps:,.0f} pkt/s"
            if best
            else "no sustained step"
        )
    if args.profile:
        print(print_profile(args.profile_out))
    print(f"took {elapsed:.0f} s")

    name = "relay_load_find_max" if args.find_max else "relay_load"
    if args.same_ids:
        name += "_same_ids"
    if args.relay_gc != "default":
        name += f"_gc_{args.relay_gc}"
    path = args.json or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "relay_load",
        "mode": mode,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "python": platform.python_version(),
        "settings": {
            "rooms": args.rooms,
            "warmup": args.warmup,
            "measure": args.measure,
            "same_ids": args.same_ids,
            "relay_gc": args.relay_gc,
            "video_pps_per_peer": VIDEO_PPS,
            "audio_pps_per_peer": AUDIO_PPS,
        },
        "results": [asdict(r) for r in results],
        "seconds": round(elapsed, 1),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
