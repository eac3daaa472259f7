"""How evenly `serve --workers N` spreads connections over its workers (issue #12: SO_REUSEPORT
or a supervisor, "measure which spreads load better").

The workers share the HTTP port by SO_REUSEPORT: the kernel picks a listening socket for each
new connection by a hash of its 4-tuple, so a worker's share of N connections is binomial, not
round-robin. This starts `python -m signaling serve --workers N` (SQLite, a private redis-server
from tests/redis_server.py), opens `--connections` long-lived keep-alive connections from distinct
source ports (as browsers' WebSockets arrive), asks each which node answered (`/healthz`), and
prints each worker's share over several rounds, next to what a round-robin supervisor would give
(exactly even) and the binomial expectation.

    PYTHONPATH=. .venv/bin/python benchmarks/reuseport_spread.py        # ~20 s
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ports import reserve_ports  # noqa: E402
from tests.redis_server import redis_server  # noqa: E402


async def one_round(url: str, connections: int) -> collections.Counter[str]:
    """Open ``connections`` keep-alive connections at once; which node holds each."""
    sessions = [
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) for _ in range(connections)
    ]
    try:

        async def ask(session: aiohttp.ClientSession) -> str:
            async with session.get(f"{url}/healthz") as response:
                return str((await response.json())["node"])

        return collections.Counter(await asyncio.gather(*(ask(s) for s in sessions)))
    finally:
        await asyncio.gather(*(s.close() for s in sessions))


async def wait_for_workers(url: str, workers: int, deadline: float) -> None:
    seen: set[str] = set()
    while len(seen) < workers:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {sorted(seen)} of {workers} workers answered")
        try:
            seen |= set(await one_round(url, 8))
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, nargs="+", default=[20, 100, 400])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with (
        redis_server() as redis,
        tempfile.TemporaryDirectory() as tmp,
        reserve_ports(args.workers * 4, tcp=False) as udp,
        reserve_ports(1, tcp=True) as http,
    ):
        config = Path(tmp) / "config.yaml"
        config.write_text(
            f"storage:\n  sqlite_path: {Path(tmp) / 'db.sqlite3'}\n"
            f"server:\n  port: {http.low}\n"
            f"media:\n  udp_port_min: {udp.low}\n  udp_port_max: {udp.high}\n"
            "metrics:\n  listen: ''\n"
            # every connection comes from 127.0.0.1: lift the per-address guard for the count
            "limits:\n  connections_per_address: 100000\n"
            f"cluster:\n  redis_url: {redis.url()}\n  node_id: w\n",
            encoding="utf-8",
        )
        http.release()
        supervisor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "signaling",
                "serve",
                "--config",
                str(config),
                "--workers",
                str(args.workers),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{http.low}"
        try:
            asyncio.run(wait_for_workers(url, args.workers, time.monotonic() + 60))
            print(
                f"SO_REUSEPORT over {args.workers} workers: the busiest worker's share of the "
                f"connections, {args.rounds} rounds each (a round-robin supervisor: exactly "
                f"{1 / args.workers:.1%})"
            )
            print(
                f"{'connections':>11} {'median':>7} {'max':>7} {'binomial 2 sd':>13} "
                f"{'max/mean':>8}"
            )
            for count in args.connections:
                shares = []
                for _ in range(args.rounds):
                    counts = asyncio.run(one_round(url, count))
                    shares.append(max(counts.values()) / count)
                mean = 1 / args.workers
                sd = math.sqrt(mean * (1 - mean) / count)
                print(
                    f"{count:>11} {statistics.median(shares):>7.1%} {max(shares):>7.1%} "
                    f"{mean + 2 * sd:>13.1%} {max(shares) / mean:>8.2f}"
                )
        finally:
            supervisor.terminate()
            supervisor.wait(30)


if __name__ == "__main__":
    main()
