"""Soak: N rooms through the real service (signaling + relay) for minutes; loss, CPU, RSS, leaks.

Two processes on the two cores:

- the server (CPU 0): ``sprechzimmer serve`` as a subprocess, with a temporary configuration
  (SQLite in a temporary directory, loopback candidates, a 400-port UDP range,
  ``limits.max_rooms: 60``, ``/metrics`` on a free port). Its therapists are created first with
  ``sprechzimmer therapist add`` (password on stdin);
- the generator (CPU 1, this process). Per room, as the browsers would: the therapist signs in
  (an aiohttp session with its cookie jar), books an appointment starting now
  (``POST /api/therapist/appointments``, CSRF header and Origin), the client reads its link and
  consents, both open ``/ws`` (Origin = public_url) and ``join``. Each side then makes a
  synthetic peer (``benchmarks.relay_load``'s: an aiortc client used for offer/answer, ICE and
  DTLS only), sends ``offer``, gets ``answer``, and once the relay reports ``media connected``
  sends SRTP itself on the nominated ICE socket: ``--audio-pps`` packets of 100 bytes and
  ``--video-pps`` packets of 1100 bytes per second per peer, protected as they are sent (the
  sequence numbers run on, so libsrtp's replay protection is never hit).

Every packet carries its send time, its stream and the sample interval it was sent in. Every
``--sample`` seconds the generator reads the server's ``/proc`` (RSS, CPU, threads, file
descriptors, sockets by kind, UDP drops), scrapes ``/metrics``, and counts the asyncio tasks
through ``benchmarks/soak_task_probe`` (a SIGUSR1 handler loaded into the server only). Loss of
an interval = its packets that never reached the other peer.

At the end each therapist sends ``end``; all peers and HTTP sessions close; after ``--settle``
seconds the server's descriptors, sockets, threads and tasks are compared with the baseline
taken before the first room, ``/metrics`` must show no rooms and no sockets, and SIGTERM must
end the server with status 0 within 10 s.

    PYTHONPATH=. .venv/bin/python benchmarks/soak.py --rooms 5 --minutes 1      # ~1.5 min
    PYTHONPATH=. .venv/bin/python benchmarks/soak.py                            # 50 rooms, 10 min
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.receiving import drain
from benchmarks.relay_load import (
    AUDIO_PAYLOAD_BYTES,
    VIDEO_PAYLOAD_BYTES,
    Peer,
    cpu_busy_seconds,
    extension_block,
    make_peer,
    process_cpu_seconds,
    take_over,
)

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
PROBE_DIR = Path(__file__).resolve().parent / "soak_task_probe"
SPRECHZIMMER = REPO / ".venv" / "bin" / "sprechzimmer"
SERVER_CPU, GENERATOR_CPU = 0, 1
# away from the tests (41000-41099, 42000-42199) and relay_load (43000-43999)
UDP_PORT_MIN, UDP_PORT_MAX = 45000, 45399
MAX_ROOMS = 60
PASSWORD = "soak-password-not-secret"
TICK = 0.005  # the pacer sends whatever is due every 5 ms, like relay_load
TICKS_PER_SECOND = round(1 / TICK)
# A pacer further behind than this skips the missed ticks instead of sending them in one burst:
# a burst of seconds of packets would block this event loop, so the signaling sockets' pings and
# the ICE consent checks would go unanswered and the server would rightly end those calls.
MAX_CATCH_UP_TICKS = 20  # 100 ms
DRAIN_SECONDS = 1.0  # after the last send, wait this long for packets still in flight
CONNECT_TIMEOUT = 60.0
SIGNAL_TIMEOUT = 15.0
EXIT_TIMEOUT = 10.0  # docs/metrics.md: the process exits within 10 s of SIGTERM
FD_TOLERANCE = 2
MIB = 1024 * 1024
# send time, stream number, packet number within the stream, sample interval
TAG = struct.Struct("!dIIH")
VIDEO_TS_STEP, AUDIO_TS_STEP = 900, 960  # 90 kHz at 100 frames/s; 48 kHz Opus, 20 ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=10.0, help="traffic, warm-up included")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds (at most half the run)")
    parser.add_argument("--audio-pps", type=int, default=50, help="per peer")
    parser.add_argument("--video-pps", type=int, default=100, help="per peer")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after the end")
    parser.add_argument(
        "--therapists", type=int, default=0, help="accounts, rooms shared round-robin (0: one each)"
    )
    parser.add_argument("--connect-concurrency", type=int, default=5, help="rooms set up at once")
    parser.add_argument(
        "--same-ids", action="store_true", help="both seats use the same extension ids"
    )
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "soak.json")
    args = parser.parse_args()
    args.warmup = min(args.warmup, args.minutes * 30)
    args.therapists = args.therapists or args.rooms

    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # loopback only
    os.sched_setaffinity(0, {GENERATOR_CPU})
    started = time.monotonic()
    report = asyncio.run(soak(args))
    report["seconds"] = round(time.monotonic() - started, 1)
    print(format_report(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json.relative_to(REPO) if args.json.is_relative_to(REPO) else args.json}")


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sprechzimmer-soak-") as tmp:
        server = Server(Path(tmp), args.therapists)
        server.create_therapists()
        server.start()
        rooms: list[Room] = []
        try:
            await server.wait_ready()
            await asyncio.sleep(2.0)  # let start-up settle before the baseline
            baseline = await server.snapshot()
            log(f"baseline: {short_snapshot(baseline)}")

            traffic = Traffic(args)
            setup_started = time.monotonic()
            rooms = await open_rooms(server, traffic, args)
            setup_seconds = time.monotonic() - setup_started
            connected = await server.snapshot()
            log(
                f"{len(rooms)} rooms connected in {setup_seconds:.1f} s: {short_snapshot(connected)}"
            )

            samples = await run(server, traffic, rooms, args)
            stopped = await server.snapshot()

            ended = await end_rooms(rooms)
            await close_rooms(rooms)
            rooms = []
            await asyncio.sleep(args.settle)
            after = await server.snapshot()
            after_metrics = await server.metrics()
            log(f"after the end: {short_snapshot(after)}")
        finally:
            await close_rooms(rooms)
            exit_status, exit_seconds = server.stop()
    return build_report(
        args,
        baseline=baseline,
        connected=connected,
        stopped=stopped,
        after=after,
        after_metrics=after_metrics,
        samples=samples,
        traffic=traffic,
        setup_seconds=setup_seconds,
        ended=ended,
        exit_status=exit_status,
        exit_seconds=exit_seconds,
    )


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the server ----------------------------------------------------------------------------


class Server:
    """``sprechzimmer serve`` in a subprocess pinned to CPU 0, and what /proc says about it."""

    def __init__(self, tmp: Path, therapists: int) -> None:
        self.tmp = tmp
        self.port, self.metrics_port = free_tcp_port(), free_tcp_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.public_url = self.url
        self.therapists = [f"soak{i:03d}" for i in range(therapists)]
        self.config = tmp / "soak.yaml"
        self.config.write_text(
            f"server:\n  host: 127.0.0.1\n  port: {self.port}\n  public_url: {self.public_url}\n"
            f"storage:\n  sqlite_path: {tmp / 'data' / 'soak.sqlite3'}\n"
            "media:\n  allow_loopback_candidates: true\n"
            '  listen_addresses: ["127.0.0.1"]\n'
            f"  udp_port_min: {UDP_PORT_MIN}\n  udp_port_max: {UDP_PORT_MAX}\n"
            f"limits:\n  max_rooms: {MAX_ROOMS}\n"
            f'metrics:\n  listen: "127.0.0.1:{self.metrics_port}"\n',
            encoding="utf-8",
        )
        self.probe_path = tmp / "tasks.json"
        self.log_path = tmp / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._last_cpu: tuple[float, float] | None = None

    def create_therapists(self) -> None:
        started = time.monotonic()
        for name in self.therapists:
            subprocess.run(
                [SPRECHZIMMER, "therapist", "add", name, "--config", self.config],
                input=f"{PASSWORD}\n".encode(),
                check=True,
                capture_output=True,
                cwd=self.tmp,
            )
        log(f"{len(self.therapists)} therapists created in {time.monotonic() - started:.1f} s")

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(PROBE_DIR), str(REPO)])
        env["SOAK_TASK_PROBE"] = str(self.probe_path)
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(
                [SPRECHZIMMER, "serve", "--config", self.config],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.tmp,
                env=env,
            )
        os.sched_setaffinity(self.process.pid, {SERVER_CPU})

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"server exited at start-up:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"server not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def snapshot(self) -> dict[str, Any]:
        """What the kernel and the task probe say about the server process right now."""
        snap = process_state(self.pid)
        snap["tasks"] = await self.tasks()
        return snap

    def cpu_fraction(self) -> float:
        """The server's CPU (of one core) since the previous call."""
        now = (time.monotonic(), process_cpu_seconds(self.pid))
        last, self._last_cpu = self._last_cpu, now
        if last is None or now[0] <= last[0]:
            return float("nan")
        return (now[1] - last[1]) / (now[0] - last[0])

    async def tasks(self) -> dict[str, Any] | None:
        """The live asyncio tasks by coroutine, from the probe; None if it did not answer."""
        if not handles_sigusr1(self.pid):
            return None  # no probe loaded: SIGUSR1 would kill the server
        before = self.probe_path.stat().st_mtime_ns if self.probe_path.exists() else 0
        os.kill(self.pid, signal.SIGUSR1)
        for _ in range(40):
            await asyncio.sleep(0.05)
            if self.probe_path.exists() and self.probe_path.stat().st_mtime_ns != before:
                return json.loads(self.probe_path.read_text())
        return None

    async def metrics(self) -> dict[str, float]:
        """``/metrics`` as {series: value}, without comments."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as response,
        ):
            text = await response.text()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    values[name] = float(value)
        return values

    def stop(self) -> tuple[int | None, float]:
        """SIGTERM; the exit status (None if it had to be killed) and the seconds it took."""
        if self.process is None:
            return None, 0.0
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            status = None
        return status, time.monotonic() - started


def handles_sigusr1(pid: int) -> bool:
    """Whether the process has a handler for SIGUSR1 (the ``SigCgt`` mask of /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGUSR1 - 1)))
    return False


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_state(pid: int) -> dict[str, Any]:
    """RSS, threads, descriptors by kind, sockets by protocol and UDP drops of one process."""
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            status[key] = value.split()
    kinds: dict[str, int] = {}
    socket_inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except FileNotFoundError:
            continue  # closed while we looked
        if target.startswith("socket:["):
            socket_inodes.add(target[8:-1])
            continue
        kind = target.split(":", 1)[0] if ":" in target else "file"
        kinds[kind] = kinds.get(kind, 0) + 1
    sockets, udp_drops = socket_kinds(pid, socket_inodes)
    return {
        "rss_mib": int(status["VmRSS"][0]) / 1024,
        "peak_rss_mib": int(status["VmHWM"][0]) / 1024,
        "threads": int(status["Threads"][0]),
        "fds": len(socket_inodes) + sum(kinds.values()),
        "fd_kinds": dict(sorted(kinds.items())),
        "sockets": sockets,
        "udp_drops": udp_drops,
    }


def socket_kinds(pid: int, inodes: set[str]) -> tuple[dict[str, int], int]:
    """How many of ``inodes`` are UDP, TCP or Unix sockets; and the kernel's drops on the UDP ones."""
    counts = {"udp": 0, "tcp": 0, "unix": 0, "other": 0}
    drops = 0
    seen = set()
    for table, kind, inode_column in (
        ("udp", "udp", 9),
        ("udp6", "udp", 9),
        ("tcp", "tcp", 9),
        ("tcp6", "tcp", 9),
        ("unix", "unix", 6),
    ):
        with open(f"/proc/{pid}/net/{table}") as f:
            next(f)
            for line in f:
                columns = line.split()
                if len(columns) > inode_column and columns[inode_column] in inodes:
                    counts[kind] += 1
                    seen.add(columns[inode_column])
                    if kind == "udp":
                        drops += int(columns[-1])
    counts["other"] = len(inodes - seen)
    return counts, drops


# --- rooms: two browsers each ----------------------------------------------------------------


class Browser:
    """One person's browser: an HTTP session with its cookie jar, later the signaling socket."""

    def __init__(self, server: Server) -> None:
        self.public_url = server.public_url
        # unsafe=True: the default jar ignores cookies from IP-address hosts like 127.0.0.1
        self.http = aiohttp.ClientSession(
            base_url=server.url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.messages: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self._arrived = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        async with self.http.request(method, path, json=body, headers=headers) as response:
            text = await response.text()
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status} {text}")
            return json.loads(text) if text else None

    async def open_socket(self) -> None:
        self.ws = await self.http.ws_connect("/ws", headers={"Origin": self.public_url})
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        """Read every message (this also answers the server's pings) until the socket closes."""
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(json.loads(msg.data))
                self._arrived.set()
        self.close_code = self.ws.close_code
        self._arrived.set()

    @property
    def open(self) -> bool:
        """Whether the signaling socket is still open (the server closes it when a call dies)."""
        return self._reader is not None and not self._reader.done()

    async def send(self, **message: Any) -> None:
        assert self.ws is not None
        await self.ws.send_json({"v": 1, **message})

    async def wait_for(self, kind: str, timeout: float = SIGNAL_TIMEOUT, **fields: Any) -> dict:
        """The first message of ``kind`` with ``fields``; an ``error`` message fails at once."""
        async with asyncio.timeout(timeout):
            while True:
                for message in self.messages:
                    if message["type"] == "error":
                        raise RuntimeError(f"server refused: {message}")
                    if message["type"] == kind and all(
                        message.get(k) == v for k, v in fields.items()
                    ):
                        return message
                if self._reader is None or self._reader.done():
                    raise RuntimeError(f"socket closed ({self.close_code}) waiting for {kind}")
                self._arrived.clear()
                await self._arrived.wait()

    async def closed(self, timeout: float) -> int | None:
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.close_code

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.http.close()


@dataclass
class Room:
    index: int
    therapist: Browser
    client: Browser
    peers: list[Peer] = field(default_factory=list)  # therapist's, client's


async def open_rooms(server: Server, traffic: Traffic, args: argparse.Namespace) -> list[Room]:
    limit = asyncio.Semaphore(args.connect_concurrency)
    rooms: list[Room] = []

    async def one(index: int) -> None:
        async with limit:
            room = Room(index, Browser(server), Browser(server))
            rooms.append(room)
            username = server.therapists[index % len(server.therapists)]
            await open_room(server, room, username, traffic, args)

    try:
        await asyncio.gather(*(one(i) for i in range(args.rooms)))
    except BaseException:
        await close_rooms(rooms)
        raise
    return sorted(rooms, key=lambda r: r.index)


async def open_room(
    server: Server, room: Room, username: str, traffic: Traffic, args: argparse.Namespace
) -> None:
    """The join flow of docs/protocol.md, then offer/answer, ICE and DTLS for both seats."""
    from aiortc import RTCSessionDescription

    therapist, client = room.therapist, room.client
    login = await therapist.request(
        "POST", "/api/therapist/login", {"username": username, "password": PASSWORD}
    )
    start = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    appointment = await therapist.request(
        "POST",
        "/api/therapist/appointments",
        {"starts_at": start},
        headers={"X-CSRF-Token": login["csrf_token"], "Origin": server.public_url},
    )
    token = appointment["invite_url"].rsplit("/", 1)[1]
    link = await client.request("GET", f"/api/client/{token}")
    await client.request(
        "POST",
        f"/api/client/{token}/consent",
        {
            "terms_version": link["terms_version"],
            "accept_terms": True,
            "consent_processing": True,
            "display_name": f"Klient {room.index}",
        },
        headers={"Origin": server.public_url},
    )
    await therapist.open_socket()
    await therapist.send(type="join", appointment=appointment["id"])
    await therapist.wait_for("joined")
    await client.open_socket()
    await client.send(type="join", invite=token)
    await client.wait_for("joined")

    # seat "b" announces other extension ids (a Chrome and a Firefox) unless --same-ids
    room.peers = [
        await make_peer(room.index, "a", args.same_ids),
        await make_peer(room.index, "b", args.same_ids),
    ]
    for side, peer in zip((therapist, client), room.peers, strict=True):
        await side.send(type="offer", sdp=peer.offer)
        answer = await side.wait_for("answer")
        await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    for side in (therapist, client):
        await side.wait_for("media", CONNECT_TIMEOUT, state="connected")
    async with asyncio.timeout(CONNECT_TIMEOUT):
        while any(p.pc.connectionState != "connected" for p in room.peers):
            await asyncio.sleep(0.05)
    for peer in room.peers:
        for transceiver in peer.pc.getTransceivers():
            await transceiver.sender.stop()  # no RTP loop, no sender reports
            await transceiver.receiver.stop()  # no decoder, no receiver reports
        take_over(peer)
        traffic.add(peer)


async def end_rooms(rooms: list[Room]) -> dict[str, Any]:
    """Each therapist sends ``end``; both sides must get ``ended`` and a 4004 close."""

    async def one(room: Room) -> tuple[bool, list[int | None]]:
        if not room.therapist.open:
            return False, [room.therapist.close_code, room.client.close_code]
        await room.therapist.send(type="end")
        told = True
        for side in (room.therapist, room.client):
            try:
                await side.wait_for("ended", reason="therapist_ended")
            except (RuntimeError, TimeoutError):
                told = False
        codes = [await side.closed(SIGNAL_TIMEOUT) for side in (room.therapist, room.client)]
        return told, codes

    started = time.monotonic()
    results = await asyncio.gather(*(one(room) for room in rooms))
    codes = [code for _, pair in results for code in pair]
    return {
        "rooms": len(rooms),
        "both_told": sum(told for told, _ in results),
        "closed_4004": codes.count(4004),
        "other_close_codes": sorted({str(c) for c in codes if c != 4004}),
        "seconds": round(time.monotonic() - started, 2),
    }


async def close_rooms(rooms: list[Room]) -> None:
    loop = asyncio.get_running_loop()
    for room in rooms:
        for peer in room.peers:
            if peer.fd >= 0:
                with contextlib.suppress(Exception):
                    loop._remove_reader(peer.fd)  # type: ignore[attr-defined]
            if peer.sock is not None:
                peer.sock.close()
                peer.sock = None
    await asyncio.gather(
        *(peer.pc.close() for room in rooms for peer in room.peers), return_exceptions=True
    )
    await asyncio.gather(
        *(side.close() for room in rooms for side in (room.therapist, room.client)),
        return_exceptions=True,
    )


# --- traffic -------------------------------------------------------------------------------


class Stream:
    """One peer's audio or video: an RTP packet template whose header and tag change per send."""

    __slots__ = (
        "addr",
        "buf",
        "index",
        "number",
        "protect",
        "seq",
        "sock",
        "tag_at",
        "ts",
        "ts_step",
    )

    def __init__(self, peer: Peer, kind: str, index: int) -> None:
        plan = peer.plans[kind]
        header = struct.pack("!BBHII", 0x90, plan.payload_type, 0, 0, plan.ssrc)
        extensions = extension_block(plan, kind, 0)  # the ids and mid this peer's offer announced
        size = VIDEO_PAYLOAD_BYTES if kind == "video" else AUDIO_PAYLOAD_BYTES
        self.tag_at = len(header) + len(extensions)
        self.buf = bytearray(header + extensions + bytes(TAG.size) + os.urandom(size - TAG.size))
        self.index = index
        self.seq, self.ts = plan.seq, random.randrange(1 << 32)
        self.ts_step = VIDEO_TS_STEP if kind == "video" else AUDIO_TS_STEP
        self.number = 0
        self.sock, self.addr, self.protect = peer.sock, peer.remote_addr, peer.tx.protect


class Traffic:
    """The pacer and the receiver: packets sent and received per sample interval.

    A peer's socket is read from the moment the peer is taken over from aiortc, so the STUN
    consent checks of both ICE agents are answered while the other rooms are still being set up.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.audio_pps, self.video_pps = args.audio_pps, args.video_pps
        self.peers: list[Peer] = []
        self.streams: list[Stream] = []
        # which streams send in each 5 ms tick of a second, every stream at a random phase
        self.slots: list[list[Stream]] = [[] for _ in range(TICKS_PER_SECOND)]
        intervals = int(args.minutes * 60 / args.sample) + 2
        self.interval = 0
        self.sent = [0] * intervals
        self.received = [0] * intervals
        self.latencies: dict[int, array.array] = {}
        self.highest: list[int] = []
        self.send_errors = 0
        self.reordered = 0  # arrived after a later packet of the same stream (or twice)
        self.undecryptable = 0
        self.max_lag = 0.0
        self.skipped = 0  # packets not sent because the pacer was more than 100 ms late
        self._stop = False

    @property
    def offered_pps(self) -> int:
        return len(self.peers) * (self.audio_pps + self.video_pps)

    def add(self, peer: Peer) -> None:
        """A peer taken over from aiortc: read its socket from now on, send once pacing starts."""
        self.peers.append(peer)
        for kind, pps in (("audio", self.audio_pps), ("video", self.video_pps)):
            stream = Stream(peer, kind, len(self.streams))
            self.streams.append(stream)
            self.highest.append(0)
            phase = random.random() / pps
            for k in range(pps):
                self.slots[int((phase + k / pps) / TICK) % TICKS_PER_SECOND].append(stream)
        loop = asyncio.get_running_loop()
        loop._add_reader(peer.fd, drain, peer, self._on_rtp, self._on_undecryptable)  # type: ignore[attr-defined]

    def unlisten(self) -> None:
        loop = asyncio.get_running_loop()
        for peer in self.peers:
            loop._remove_reader(peer.fd)  # type: ignore[attr-defined]

    def stop(self) -> None:
        self._stop = True

    async def pace(self) -> None:
        """Send every tick's packets; a late wake-up sends up to 100 ms of missed ticks at once."""
        pack_into, tag_pack_into, clock = struct.pack_into, TAG.pack_into, time.perf_counter
        slots, sent = self.slots, self.sent
        start = clock()
        done_ticks = 0
        while not self._stop:
            due = int((clock() - start) / TICK) + 1
            self.max_lag = max(self.max_lag, (due - 1 - done_ticks) * TICK)
            if due - done_ticks > MAX_CATCH_UP_TICKS:
                for tick in range(done_ticks, due - MAX_CATCH_UP_TICKS):
                    self.skipped += len(slots[tick % TICKS_PER_SECOND])
                done_ticks = due - MAX_CATCH_UP_TICKS
            interval = self.interval
            while done_ticks < due:
                for s in slots[done_ticks % TICKS_PER_SECOND]:
                    s.seq = (s.seq + 1) & 0xFFFF
                    s.ts = (s.ts + s.ts_step) & 0xFFFFFFFF
                    s.number += 1
                    buf = s.buf
                    pack_into("!HI", buf, 2, s.seq, s.ts)
                    tag_pack_into(buf, s.tag_at, clock(), s.index, s.number, interval)
                    try:
                        s.sock.sendto(s.protect(bytes(buf)), s.addr)
                    except OSError:
                        self.send_errors += 1
                        continue
                    sent[interval] += 1
                done_ticks += 1
            await asyncio.sleep(max(0.0, start + done_ticks * TICK - clock()))

    def _on_rtp(self, plain: bytes, header_end: int, _read_at: float) -> None:
        # the clock is read after unprotect, as in the earlier soak results: they stay comparable
        now = time.perf_counter()
        sent_at, stream, number, interval = TAG.unpack_from(plain, header_end)
        self.received[interval] += 1
        samples = self.latencies.get(interval)
        if samples is not None:
            samples.append(now - sent_at)
        highest = self.highest
        if number <= highest[stream]:
            self.reordered += 1
        else:
            highest[stream] = number

    def _on_undecryptable(self) -> None:
        self.undecryptable += 1

    def begin_interval(self, interval: int) -> None:
        self.latencies[interval] = array.array("d")
        self.interval = interval

    def close_interval(self, interval: int) -> dict[str, Any]:
        """Loss and latency of an interval whose packets have all had time to arrive."""
        sent, received = self.sent[interval], self.received[interval]
        latencies = sorted(self.latencies.pop(interval, ()))

        def ms(p: float) -> float | None:
            if not latencies:
                return None
            return round(latencies[min(int(p * len(latencies)), len(latencies) - 1)] * 1000, 3)

        return {
            "sent": sent,
            "received": received,
            "loss": (sent - received) / sent if sent else 0.0,
            "latency_p50_ms": ms(0.50),
            "latency_p99_ms": ms(0.99),
            "latency_max_ms": ms(1.0),
        }


async def run(
    server: Server, traffic: Traffic, rooms: list[Room], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Traffic for ``--minutes`` with a sample every ``--sample`` seconds.

    Sample k (k >= 1) is taken at the end of interval k - 1 and carries that interval's loss and
    latency. The log line of sample k shows interval k - 2, whose packets have long arrived.
    """
    duration = args.minutes * 60
    count = int(duration / args.sample)
    samples: list[dict[str, Any]] = []
    intervals: dict[int, dict[str, Any]] = {}
    traffic.begin_interval(0)
    pacer = asyncio.create_task(traffic.pace())
    started = time.monotonic()
    server.cpu_fraction()
    own_cpu, cores, forwarded = process_cpu_seconds(os.getpid()), cpu_busy_seconds(), None
    try:
        for k in range(count + 1):
            await asyncio.sleep(max(0.0, started + k * args.sample - time.monotonic()))
            if k == count:
                traffic.stop()
            else:
                traffic.begin_interval(k)  # packets sent from now on belong to interval k
            wall = time.monotonic() - started
            sample: dict[str, Any] = {
                "t": round(wall, 1),
                "late_s": round(wall - k * args.sample, 2),  # > 1 s: this process was stalled
                "warm": wall >= args.warmup - 0.5,
                "rooms_alive": sum(r.therapist.open and r.client.open for r in rooms),
            }
            metrics = await server.metrics()
            relay_forwarded = sum(
                v
                for name, v in metrics.items()
                if name.startswith("sprechzimmer_rtp_packets_forwarded_total")
            )
            if k > 0:
                sample["server_cpu"] = server.cpu_fraction()
                cpu_now, cores_now = process_cpu_seconds(os.getpid()), cpu_busy_seconds()
                seconds = wall - samples[-1]["t"]  # more than --sample when this one is late
                sample["generator_cpu"] = (cpu_now - own_cpu) / seconds
                sample["cpu0_busy"] = (cores_now[SERVER_CPU] - cores[SERVER_CPU]) / seconds
                sample["cpu1_busy"] = (cores_now[GENERATOR_CPU] - cores[GENERATOR_CPU]) / seconds
                sample["relay_forwarded_pps"] = (relay_forwarded - forwarded) / seconds
                own_cpu, cores = cpu_now, cores_now
            forwarded = relay_forwarded
            sample["rooms_active"] = metrics.get("sprechzimmer_rooms_active")
            sample.update(await server.snapshot())
            sample["pacer_max_lag_ms"] = round(traffic.max_lag * 1000, 1)
            traffic.max_lag = 0.0
            samples.append(sample)
            line = short_sample(sample)
            if k >= 2:
                intervals[k - 2] = traffic.close_interval(k - 2)
                line += f", loss[{k - 2}] {intervals[k - 2]['loss']:.3%}"
            log(line)
        await pacer
        await asyncio.sleep(DRAIN_SECONDS)
    finally:
        traffic.stop()
        traffic.unlisten()
        if not pacer.done():
            pacer.cancel()
    for j in range(count):
        if j not in intervals:  # the last one, now that its packets have arrived
            intervals[j] = traffic.close_interval(j)
        samples[j + 1].update({"interval": j, **intervals[j]})
    return samples


# --- the report ----------------------------------------------------------------------------


def build_report(args: argparse.Namespace, **parts: Any) -> dict[str, Any]:
    samples, traffic = parts["samples"], parts["traffic"]
    baseline, after = parts["baseline"], parts["after"]
    warm = [s for s in samples if s["warm"]]
    first_warm, last = warm[0], samples[-1]
    rss_growth = (last["rss_mib"] - first_warm["rss_mib"]) / first_warm["rss_mib"]
    slope = rss_slope(warm)
    intervals = [s for s in samples if "interval" in s]
    warm_from = int(args.warmup / args.sample)
    sent = sum(i["sent"] for i in intervals)
    received = sum(i["received"] for i in intervals)
    sent_warm = sum(i["sent"] for i in intervals if i["interval"] >= warm_from)
    received_warm = sum(i["received"] for i in intervals if i["interval"] >= warm_from)
    cpu = [s["server_cpu"] for s in warm if "server_cpu" in s]
    p99s = [i["latency_p99_ms"] for i in intervals if i["latency_p99_ms"] is not None]
    metrics = parts["after_metrics"]
    checks = {
        "fds_back_to_baseline": abs(after["fds"] - baseline["fds"]) <= FD_TOLERANCE,
        "udp_sockets_back_to_baseline": after["sockets"]["udp"] == baseline["sockets"]["udp"],
        "tcp_sockets_back_to_baseline": after["sockets"]["tcp"] == baseline["sockets"]["tcp"],
        "tasks_back_to_baseline": (
            after["tasks"] is not None
            and baseline["tasks"] is not None
            and after["tasks"]["tasks"] <= baseline["tasks"]["tasks"]
        ),
        "rooms_active_0": metrics.get("sprechzimmer_rooms_active") == 0,
        "websocket_connections_active_0": (
            metrics.get("sprechzimmer_websocket_connections_active") == 0
        ),
        "participants_active_0": all(
            metrics.get(f'sprechzimmer_participants_active{{role="{r}"}}') == 0
            for r in ("therapist", "client")
        ),
        "rss_growth_below_5pct": rss_growth < 0.05,
        "sigterm_exit_0_within_10s": parts["exit_status"] == 0,
        "all_rooms_ended_for_both": parts["ended"]["both_told"] == args.rooms,
        "all_rooms_alive_throughout": min(s["rooms_alive"] for s in samples) == args.rooms,
    }
    return {
        "benchmark": "soak",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_at_end": os.getloadavg(),
        },
        "python": platform.python_version(),
        "settings": {
            "rooms": args.rooms,
            "therapists": args.therapists,
            "minutes": args.minutes,
            "warmup_seconds": args.warmup,
            "sample_seconds": args.sample,
            "audio_pps_per_peer": args.audio_pps,
            "video_pps_per_peer": args.video_pps,
            "offered_pps": traffic.offered_pps,
            "same_ids": args.same_ids,
            "udp_ports": [UDP_PORT_MIN, UDP_PORT_MAX],
            "max_rooms": MAX_ROOMS,
        },
        "summary": {
            "setup_seconds": round(parts["setup_seconds"], 1),
            "rss_mib_baseline": round(baseline["rss_mib"], 1),
            "rss_mib_connected": round(parts["connected"]["rss_mib"], 1),
            "rss_mib_warmup_end": round(first_warm["rss_mib"], 1),
            "rss_mib_end": round(last["rss_mib"], 1),
            "rss_growth": rss_growth,
            "rss_slope_mib_per_min": slope,
            "rss_mib_after_end": round(after["rss_mib"], 1),
            "peak_rss_mib": round(after["peak_rss_mib"], 1),
            "sent": sent,
            "received": received,
            "loss": (sent - received) / sent if sent else 0.0,
            "loss_after_warmup": (sent_warm - received_warm) / sent_warm if sent_warm else 0.0,
            "intervals_with_loss": sum(i["received"] < i["sent"] for i in intervals),
            "send_errors": traffic.send_errors,
            "skipped_late": traffic.skipped,
            "reordered_or_duplicate": traffic.reordered,
            "undecryptable": traffic.undecryptable,
            "server_udp_drops": last["udp_drops"],
            "server_cpu_mean": statistics.fmean(cpu) if cpu else None,
            "server_cpu_max": max(cpu) if cpu else None,
            "generator_cpu_mean": statistics.fmean(
                s["generator_cpu"] for s in samples if "generator_cpu" in s
            ),
            "latency_p99_ms_worst_interval": max(p99s) if p99s else None,
            "latency_p50_ms_median_interval": (
                statistics.median(i["latency_p50_ms"] for i in intervals if i["latency_p50_ms"])
                if p99s
                else None
            ),
            "pacer_max_lag_ms": max(s["pacer_max_lag_ms"] for s in samples),
            "sample_max_late_s": max(s["late_s"] for s in samples),
            "rooms_alive_min": min(s["rooms_alive"] for s in samples),
            "cpu0_busy_mean": statistics.fmean(s["cpu0_busy"] for s in samples if "cpu0_busy" in s),
            "cpu1_busy_mean": statistics.fmean(s["cpu1_busy"] for s in samples if "cpu1_busy" in s),
        },
        "resources": {
            name: {k: v for k, v in snap.items() if k != "tasks"}
            | {"tasks": (snap["tasks"] or {}).get("tasks")}
            for name, snap in (
                ("baseline", baseline),
                ("connected", parts["connected"]),
                ("traffic_stopped", parts["stopped"]),
                ("after_end", after),
            )
        },
        "tasks_by_coroutine": {
            "baseline": (baseline["tasks"] or {}).get("by_coroutine"),
            "connected": (parts["connected"]["tasks"] or {}).get("by_coroutine"),
            "after_end": (after["tasks"] or {}).get("by_coroutine"),
        },
        "end": parts["ended"],
        "metrics_after_end": {
            k: v
            for k, v in metrics.items()
            if k.startswith(
                (
                    "sprechzimmer_rooms_active",
                    "sprechzimmer_websocket_connections_active",
                    "sprechzimmer_participants_active",
                    "sprechzimmer_joins_total",
                    "sprechzimmer_sessions_total",
                    "sprechzimmer_media_connections_total",
                    "sprechzimmer_ice_failures_total",
                    "sprechzimmer_dtls_failures_total",
                    "sprechzimmer_rtp_packets_forwarded_total",
                    "sprechzimmer_rtp_packets_dropped_total",
                    "sprechzimmer_rtp_packets_lost_total",
                    "process_open_fds",
                )
            )
        },
        "exit_status": parts["exit_status"],
        "exit_seconds": round(parts["exit_seconds"], 2),
        "checks": checks,
        "samples": [
            {k: v for k, v in s.items() if k not in ("fd_kinds", "tasks")}
            | {"tasks": (s["tasks"] or {}).get("tasks")}
            for s in samples
        ],
    }


def rss_slope(samples: list[dict[str, Any]]) -> float | None:
    """Least-squares slope of RSS over time, MiB per minute."""
    if len(samples) < 2:
        return None
    xs = [s["t"] / 60 for s in samples]
    ys = [s["rss_mib"] for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else None


def short_snapshot(s: dict[str, Any]) -> str:
    tasks = s["tasks"]["tasks"] if s.get("tasks") else "?"
    sockets = s["sockets"]
    return (
        f"RSS {s['rss_mib']:.1f} MiB, {s['threads']} threads, {s['fds']} fds "
        f"(udp {sockets['udp']}, tcp {sockets['tcp']}, unix {sockets['unix']}), {tasks} tasks"
    )


def short_sample(s: dict[str, Any]) -> str:
    text = (
        f"t={s['t']:6.1f}s  rooms {s['rooms_alive']} alive, {fmt(s['rooms_active'], 'g')} in the "
        f"relay; {short_snapshot(s)}"
    )
    if "server_cpu" in s:
        text += f", server CPU {s['server_cpu']:.0%}, generator CPU {s['generator_cpu']:.0%}"
    if "interval" in s:
        text += f", loss[{s['interval']}] {s['loss']:.3%}"
    return text


def format_report(r: dict[str, Any]) -> str:
    s, st, res = r["summary"], r["settings"], r["resources"]
    lines = [
        f"soak: {st['rooms']} rooms ({st['therapists']} therapists), {st['minutes']:g} min "
        f"(warm-up {st['warmup_seconds']:g} s), {st['audio_pps_per_peer']}+"
        f"{st['video_pps_per_peer']} pkt/s per peer = {st['offered_pps']:,} pkt/s offered, "
        f"server on CPU {SERVER_CPU}, generator on CPU {GENERATOR_CPU}, {r['machine']['cores']} cores",
        f"rooms connected in {s['setup_seconds']:.1f} s",
        f"RSS MiB: baseline {s['rss_mib_baseline']:.1f}, connected {s['rss_mib_connected']:.1f}, "
        f"warm-up end {s['rss_mib_warmup_end']:.1f}, end {s['rss_mib_end']:.1f} "
        f"(growth {s['rss_growth']:+.2%}, slope {fmt(s['rss_slope_mib_per_min'], '+.3f')} MiB/min), "
        f"after the end {s['rss_mib_after_end']:.1f}, peak {s['peak_rss_mib']:.1f}",
        f"loss: {s['loss']:.4%} of {s['sent']:,} ({s['loss_after_warmup']:.4%} after warm-up; "
        f"{s['intervals_with_loss']} intervals with loss), send errors {s['send_errors']}, "
        f"skipped (pacer > 100 ms late) {s['skipped_late']:,}, "
        f"reordered/dup {s['reordered_or_duplicate']}, server UDP drops {s['server_udp_drops']}",
        f"server CPU after warm-up: mean {fmt(s['server_cpu_mean'], '.0%')}, max "
        f"{fmt(s['server_cpu_max'], '.0%')}; generator CPU mean {s['generator_cpu_mean']:.0%}; "
        f"cores busy: cpu0 {s['cpu0_busy_mean']:.0%}, cpu1 {s['cpu1_busy_mean']:.0%}",
        f"latency (generator send -> other peer, per {st['sample_seconds']:g} s interval): "
        f"median p50 {fmt(s['latency_p50_ms_median_interval'], '.2f')} ms, worst p99 "
        f"{fmt(s['latency_p99_ms_worst_interval'], '.2f')} ms; pacer max lag "
        f"{s['pacer_max_lag_ms']:.0f} ms; samples up to {s['sample_max_late_s']:.1f} s late; "
        f"rooms alive: at least {s['rooms_alive_min']} of {st['rooms']}",
        "",
        f"{'':>16} {'RSS MiB':>8} {'threads':>7} {'fds':>5} {'udp':>5} {'tcp':>5} {'unix':>5} "
        f"{'tasks':>6}",
    ]
    for name, snap in res.items():
        sockets = snap["sockets"]
        lines.append(
            f"{name:>16} {snap['rss_mib']:>8.1f} {snap['threads']:>7} {snap['fds']:>5} "
            f"{sockets['udp']:>5} {sockets['tcp']:>5} {sockets['unix']:>5} "
            f"{fmt(snap['tasks'], 'd', 6)}"
        )
    lines.append("")
    lines.append(
        f"{'t s':>6} {'RSS MiB':>8} {'srv CPU':>7} {'gen CPU':>7} {'fds':>5} {'udp':>4} "
        f"{'tasks':>5} {'sent':>8} {'loss':>8} {'p99 ms':>7} {'cpu0':>5} {'cpu1':>5}"
    )
    for sample in r["samples"]:
        lines.append(
            f"{sample['t']:>6.0f} {sample['rss_mib']:>8.1f} "
            f"{fmt(sample.get('server_cpu'), '.0%', 7)} {fmt(sample.get('generator_cpu'), '.0%', 7)} "
            f"{sample['fds']:>5} {sample['sockets']['udp']:>4} "
            f"{fmt(sample['tasks'], 'd', 5)} "
            f"{fmt(sample.get('sent'), ',', 8)} {fmt(sample.get('loss'), '.3%', 8)} "
            f"{fmt(sample.get('latency_p99_ms'), '.2f', 7)} {fmt(sample.get('cpu0_busy'), '.0%', 5)} "
            f"{fmt(sample.get('cpu1_busy'), '.0%', 5)}"
        )
    lines.append("sent/loss/p99 of a row: the interval that ended at that row's time")
    lines.append("")
    end = r["end"]
    lines.append(
        f"end: {end['both_told']}/{end['rooms']} rooms told both sides, {end['closed_4004']} "
        f"sockets closed 4004 {end['other_close_codes'] or ''}; /metrics after: "
        + ", ".join(
            f"{k.removeprefix('sprechzimmer_')}={v:g}"
            for k, v in r["metrics_after_end"].items()
            if "active" in k
        )
    )
    lines.append(f"SIGTERM: exit status {r['exit_status']} after {r['exit_seconds']:.1f} s")
    lines.append(
        "checks: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in r["checks"].items())
    )
    lines.append(f"took {r['seconds']:.0f} s")
    return "\n".join(lines)


def fmt(value: Any, spec: str, width: int = 0) -> str:
    """``value`` formatted with ``spec``, or "-" when missing; right-aligned in ``width``."""
    missing = value is None or (isinstance(value, float) and value != value)
    return ("-" if missing else format(value, spec)).rjust(width)


if __name__ == "__main__":
    main()
