"""`sprechzimmer serve --workers 2` with Redis: one HTTP port answered by two nodes, each with its
own slice of the UDP range; SIGTERM to the supervisor stops them all. Without Redis, more than
one worker is refused with a clear error."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from signaling.cluster import Cluster
from signaling.config import load_config
from tests.ports import PortRange, reserve_ports
from tests.redis_server import RedisServer

DEADLINE_SECONDS = 60


def write(tmp_path: Path, port: int, udp: PortRange, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"storage:\n  sqlite_path: {tmp_path / 'data' / 'db.sqlite3'}\n"
        f"server:\n  port: {port}\n"
        f"media:\n  udp_port_min: {udp.low}\n  udp_port_max: {udp.high}\n"
        "metrics:\n  listen: ''\n" + extra,
        encoding="utf-8",
    )
    return path


async def test_two_workers_share_the_port_with_disjoint_udp_slices_and_stop_on_sigterm(
    tmp_path: Path, shared_redis: RedisServer, key_prefix: str, udp_ports: PortRange
):
    with reserve_ports(1, tcp=True) as http:
        path = write(
            tmp_path,
            http.low,
            udp_ports,
            f"cluster:\n  redis_url: {shared_redis.url()}\n  node_id: w\n"
            f"  key_prefix: '{key_prefix}'\n",
        )
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "signaling", "serve", "--config", str(path), "--workers", "2"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            seen: set[str] = set()
            async with asyncio.timeout(DEADLINE_SECONDS):
                while seen != {"w-0", "w-1"}:
                    # a new connection each time: the kernel picks a worker per connection
                    connector = aiohttp.TCPConnector(force_close=True)
                    async with aiohttp.ClientSession(connector=connector) as client:
                        try:
                            async with client.get(f"http://127.0.0.1:{http.low}/healthz") as r:
                                seen.add((await r.json())["node"])
                        except aiohttp.ClientConnectionError:
                            await asyncio.sleep(0.1)
            config = load_config(path, environ={})
            reader = Cluster(config, "reader", load=lambda: 0)
            try:
                nodes = {n.node_id: n for n in await reader.nodes()}
            finally:
                await reader.link.close()
            slices = sorted((n.udp_port_min, n.udp_port_max) for n in nodes.values())
            assert len(slices) == 2, nodes
            (low0, high0), (low1, high1) = slices
            assert udp_ports.low <= low0 <= high0 < low1 <= high1 <= udp_ports.high, slices

            supervisor.send_signal(signal.SIGTERM)
            status = await asyncio.to_thread(supervisor.wait, DEADLINE_SECONDS)
            assert status == 0, supervisor.stderr.read().decode() if supervisor.stderr else ""
        finally:
            if supervisor.poll() is None:
                supervisor.kill()
                supervisor.wait()
    stderr = supervisor.stderr.read().decode() if supervisor.stderr else ""
    assert "Traceback" not in stderr, stderr


def test_more_than_one_worker_without_redis_is_refused(tmp_path: Path, udp_ports: PortRange):
    path = write(tmp_path, 8080, udp_ports)
    result = subprocess.run(
        [sys.executable, "-m", "signaling", "serve", "--config", str(path), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--workers 2 needs cluster.redis_url" in result.stderr
    assert "Traceback" not in result.stderr
