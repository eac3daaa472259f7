"""A cluster of real node processes (`python -m signaling serve`) sharing one PostgreSQL database
and one redis-server, each on its own reserved HTTP port and UDP range; and pages that behave
like web/static/js/socket.js: on a socket's close (not a final code) they reconnect with back-off
(1 s doubling to 10 s), join again and start media with a fresh peer connection."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from signaling.cluster import Cluster
from signaling.config import Config, load_config
from tests.ports import PortRange, reserve_ports
from tests.privacy_canaries import remember
from tests.redis_server import RedisServer
from tests.sfu.media_peers import MediaPeer, Picture
from tests.signaling.api_server import PASSWORD, PUBLIC_URL, call

START_SECONDS = 60.0
# the page's back-off (web/static/js/socket.js)
FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 10.0
# close codes after which the page does not reconnect (socket.js FINAL_CLOSE_CODES)
FINAL_CLOSE_CODES = {4001, 4003, 4004, 4009, 4029}


@dataclass
class NodeProcess:
    node_id: str
    config_path: Path
    port: int
    udp: PortRange
    process: subprocess.Popen[bytes] | None = None
    stderr_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.stderr_path is not None
        with self.stderr_path.open("ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "signaling", "serve", "--config", str(self.config_path)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    async def ready(self) -> None:
        """Until /healthz names this node (fails saying which node did not come up)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_SECONDS
        async with aiohttp.ClientSession() as client:
            while True:
                assert self.process is not None and self.process.poll() is None, (
                    f"node {self.node_id} exited at start: {self.stderr()[-3000:]}"
                )
                with contextlib.suppress(aiohttp.ClientError):
                    async with client.get(f"{self.url}/healthz") as response:
                        if (await response.json()).get("node") == self.node_id:
                            return
                if loop.time() > deadline:
                    raise AssertionError(f"node {self.node_id} not up within {START_SECONDS} s")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no drain, no deregistration, nothing said to anyone
        self.process.wait()

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float) -> int:
        assert self.process is not None
        return await asyncio.to_thread(self.process.wait, timeout)

    def stderr(self) -> str:
        assert self.stderr_path is not None
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""


@dataclass
class NodeCluster:
    nodes: list[NodeProcess]
    config: Config  # the first node's, for readers in the test (Redis, the database)
    reader: Cluster

    async def owner(self, appointment_id: int) -> str | None:
        return await self.reader.placement.owner(appointment_id)

    def node(self, node_id: str) -> NodeProcess:
        return next(n for n in self.nodes if n.node_id == node_id)


def _node_config(
    tmp_path: Path,
    node_id: str,
    port: int,
    udp: PortRange,
    dsn: str,
    redis: RedisServer,
    key_prefix: str,
    secret: str,
    extra: str,
    cluster_extra: str,
    public_url: str,
) -> Path:
    data = tmp_path / node_id
    data.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{node_id}.yaml"
    path.write_text(
        "storage:\n"
        "  backend: postgresql\n"
        f"  postgresql_dsn: '{dsn}'\n"
        f"  sqlite_path: {data / 'unused.sqlite3'}\n"
        f"server:\n  port: {port}\n  public_url: {public_url}\n  session_secret: '{secret}'\n"
        "media:\n"
        "  allow_loopback_candidates: true\n"
        '  listen_addresses: ["127.0.0.1"]\n'
        f"  udp_port_min: {udp.low}\n  udp_port_max: {udp.high}\n"
        "metrics:\n  listen: ''\n"
        "cluster:\n"
        f"  redis_url: {redis.url()}\n"
        f"  node_id: {node_id}\n"
        f"  key_prefix: '{key_prefix}'\n"
        "  heartbeat_interval_seconds: 0.5\n"
        "  heartbeat_ttl_seconds: 2\n" + cluster_extra + extra,
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


@contextlib.asynccontextmanager
async def node_cluster(
    tmp_path: Path,
    dsn: str,
    redis: RedisServer,
    key_prefix: str,
    names: tuple[str, ...] = ("n1", "n2"),
    extra: str = "",
    cluster_extra: str = "",
    own_origins: bool = False,
) -> AsyncIterator[NodeCluster]:
    """Start one node process per name and wait until each answers; stop them afterwards.
    `extra`: more YAML sections; `cluster_extra`: more lines of the `cluster` section.
    `own_origins`: each node's public URL is its own address (a browser reaches it there and
    its Origin checks hold), not the one name behind a load balancer that tests with their own
    HTTP client use."""
    secret = secrets.token_urlsafe(24)
    remember(secret)
    with contextlib.ExitStack() as stack:
        nodes = []
        for name in names:
            http = stack.enter_context(reserve_ports(1, tcp=True))
            udp = stack.enter_context(reserve_ports(20))
            public_url = f"http://127.0.0.1:{http.low}" if own_origins else PUBLIC_URL
            path = _node_config(
                tmp_path,
                name,
                http.low,
                udp,
                dsn,
                redis,
                key_prefix,
                secret,
                extra,
                cluster_extra,
                public_url,
            )
            nodes.append(
                NodeProcess(name, path, http.low, udp, stderr_path=tmp_path / f"{name}.stderr")
            )
        for node in nodes:
            node.start()
        try:
            await asyncio.gather(*(node.ready() for node in nodes))
            config = load_config(nodes[0].config_path, environ={})
            reader = Cluster(config, "test-reader", load=lambda: 0)
            await reader.link.start()
            try:
                yield NodeCluster(nodes, config, reader)
            finally:
                await reader.link.close()
        finally:
            for node in nodes:
                if node.process is not None and node.process.poll() is None:
                    node.kill()
    for node in nodes:
        assert "Traceback" not in node.stderr(), node.stderr()[-3000:]


def http_session() -> aiohttp.ClientSession:
    # no base_url: a page's requests go to whichever node the test names; cookies are per host,
    # not per port, so the session holds on every node as behind one load balancer
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def therapist_session(url: str, username: str) -> tuple[aiohttp.ClientSession, str]:
    http = http_session()
    status, body, _ = await call(
        http,
        "POST",
        f"{url}/api/therapist/login",
        json={"username": username, "password": PASSWORD},
        headers={"Origin": PUBLIC_URL},
    )
    assert status == 200, body
    remember(body["csrf_token"], *(c.value for c in http.cookie_jar))
    return http, body["csrf_token"]


async def book(url: str, http: aiohttp.ClientSession, csrf: str) -> tuple[int, str]:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    status, body, _ = await call(
        http,
        "POST",
        f"{url}/api/therapist/appointments",
        json={"starts_at": start},
        headers={"X-CSRF-Token": csrf, "Origin": PUBLIC_URL},
    )
    assert status == 201, body
    token = body["invite_url"].rsplit("/", 1)[1]
    remember(token)
    return body["id"], token


async def consenting_client(url: str, token: str) -> aiohttp.ClientSession:
    http = http_session()
    status, info, _ = await call(http, "GET", f"{url}/api/client/{token}")
    assert status == 200, info
    payload = {
        "accept_terms": True,
        "consent_processing": True,
        "terms_version": info["terms_version"],
    }
    status, body, _ = await call(
        http,
        "POST",
        f"{url}/api/client/{token}/consent",
        json=payload,
        headers={"Origin": PUBLIC_URL},
    )
    assert status == 200, body
    return http


@dataclass
class Page:
    """A call page: one socket at a time to a node chosen by `route()` (the load balancer), its
    own reconnect with back-off, and a fresh MediaPeer after every `joined`."""

    name: str
    http: aiohttp.ClientSession
    join: dict[str, Any]
    route: Callable[[], str]
    picture: Picture
    tone: float
    peer: MediaPeer | None = None
    joins: int = 0
    nodes_used: list[str] = field(default_factory=list)
    closes: list[int | None] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False
    final: int | None = None
    # time.monotonic() of the last join sent, joined, offer sent, answer (benchmarks/cluster_join)
    join_sent_at: float = 0.0
    joined_at: float = 0.0
    offer_sent_at: float = 0.0
    answer_at: float = 0.0
    _task: asyncio.Task[None] | None = None
    _ws: aiohttp.ClientWebSocketResponse | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self.stopped = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.peer is not None:
            await self.peer.close()
        await self.http.close()

    async def send(self, **message: Any) -> None:
        assert self._ws is not None
        await self._ws.send_json({"v": 1, **message})

    async def _run(self) -> None:
        delay = FIRST_DELAY_SECONDS
        while not self.stopped:
            url = self.route()
            try:
                ws = await self.http.ws_connect(
                    f"{url}/ws", headers={"Origin": PUBLIC_URL}, heartbeat=5.0
                )
            except (aiohttp.ClientError, OSError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DELAY_SECONDS)
                continue
            delay = FIRST_DELAY_SECONDS  # as socket.js: the back-off starts over on open
            self._ws = ws
            self.nodes_used.append(url)
            code = await self._session(ws)
            self.closes.append(code)
            if code in FINAL_CLOSE_CODES:
                self.final = code
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_SECONDS)

    async def _session(self, ws: aiohttp.ClientWebSocketResponse) -> int | None:
        self.join_sent_at = time.monotonic()
        await ws.send_json({"v": 1, "type": "join", **self.join})
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            self.received.append(data)
            if data["type"] == "joined":
                self.joined_at = time.monotonic()
                self.joins += 1
                if self.peer is not None:
                    await self.peer.close()
                self.peer = MediaPeer(self.picture, tone=self.tone)
                sdp = await self.peer.offer()
                self.offer_sent_at = time.monotonic()
                await ws.send_json({"v": 1, "type": "offer", "sdp": sdp})
            elif data["type"] == "renegotiate":
                # as call.js: offer again on a fresh peer connection (the other browser shares
                # a better codec); no reconnect of the socket, not counted as a join
                if self.peer is not None:
                    await self.peer.close()
                self.peer = MediaPeer(self.picture, tone=self.tone)
                sdp = await self.peer.offer()
                self.offer_sent_at = time.monotonic()
                await ws.send_json({"v": 1, "type": "reconnect", "sdp": sdp})
            elif data["type"] == "answer" and self.peer is not None:
                self.answer_at = time.monotonic()
                await self.peer.accept(data["sdp"])
        return ws.close_code


def flowing_since(page: Page, joins: int) -> bool:
    """The page joined more than `joins` times and its newest peer decodes the other's media."""
    peer = page.peer
    return (
        page.joins > joins
        and peer is not None
        and peer.received.video_frames >= 10
        and peer.received.loud_audio_frames >= 10
    )


async def until(condition: Callable[[], bool], what: Callable[[], str], timeout: float) -> float:
    """Until `condition()`; returns the seconds it took, or fails with `what()` after `timeout`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not condition():
        if loop.time() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {what()}")
        await asyncio.sleep(0.05)
    return loop.time() - start
