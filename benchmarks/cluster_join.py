"""Placement and signal-relay overhead (issue #12): join -> first remote frame with the two
WebSockets on different nodes vs the same node.

Two node processes (`python -m signaling serve`) share a private PostgreSQL and redis-server
(the test fixtures: tests/postgres_server.py, tests/redis_server.py), each with its own HTTP port
and UDP range on 127.0.0.1. Each round books an appointment, lets the client consent, starts both
pages (tests/cluster/node_processes.py: aiortc peers with PyAV-encoded video and a tone), and
measures from the later of the two `join`s sent until both peers have decoded their first video
frame of the other; then the therapist ends the call. Rounds alternate between "same" (both
sockets on n1) and "cross" (therapist on n1, client on n2; the room lands on one of them, the
other socket's signals go through Redis), so drift of this VM hits both alike.

    PYTHONPATH=. .venv/bin/python benchmarks/cluster_join.py --rounds 20     # ~1-2 min
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from signaling.storage.postgresql import PostgresqlStorage  # noqa: E402
from tests.cluster.node_processes import (  # noqa: E402
    Page,
    book,
    consenting_client,
    node_cluster,
    therapist_session,
    until,
)
from tests.postgres_server import postgres_server  # noqa: E402
from tests.redis_server import redis_server  # noqa: E402
from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE, use_loopback_only  # noqa: E402
from tests.signaling.api_server import _PASSWORD_HASH  # noqa: E402

ROUND_TIMEOUT_SECONDS = 30.0


def first_frame(page: Page) -> float | None:
    times = page.peer.received.video_times if page.peer is not None else []
    return times[0] if times else None


def signaling_seconds(page: Page) -> float:
    """join -> joined plus offer -> answer: the server's part, where the relay adds its hops."""
    return (page.joined_at - page.join_sent_at) + (page.answer_at - page.offer_sent_at)


async def one_round(cluster, client_node: str) -> tuple[float, float]:
    t_url, c_url = cluster.node("n1").url, cluster.node(client_node).url
    http, csrf = await therapist_session(t_url, "alice")
    appointment_id, token = await book(t_url, http, csrf)
    client_http = await consenting_client(c_url, token)
    therapist = Page("t", http, {"appointment": appointment_id}, lambda: t_url, RED_BLUE, 440)
    client = Page("c", client_http, {"invite": token}, lambda: c_url, GREEN_WHITE, 880)
    therapist.start()
    client.start()
    try:
        await until(
            lambda: first_frame(therapist) is not None and first_frame(client) is not None,
            lambda: "a first frame on both sides",
            ROUND_TIMEOUT_SECONDS,
        )
        start = max(therapist.join_sent_at, client.join_sent_at)
        media = max(first_frame(therapist), first_frame(client)) - start
        # the client's socket is the one on n2 in "cross" rounds
        return media, signaling_seconds(client)
    finally:
        await therapist.send(type="end")
        await until(lambda: therapist.final is not None, lambda: "the end", ROUND_TIMEOUT_SECONDS)
        await therapist.stop()
        await client.stop()


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def main(rounds: int) -> dict:
    use_loopback_only()
    results: dict[str, list[float]] = {"same": [], "cross": []}
    signaling: dict[str, list[float]] = {"same": [], "cross": []}
    with postgres_server() as postgres, redis_server() as redis:
        dsn = postgres.create_database()
        storage = await PostgresqlStorage.open(dsn, pool_size=2)
        await storage.add_therapist("alice", _PASSWORD_HASH)
        await storage.close()
        with tempfile.TemporaryDirectory() as tmp:
            async with node_cluster(Path(tmp), dsn, redis, "bench:") as cluster:
                for node in ("n1", "n2"):  # warm-up, not counted: imports, first connections
                    await one_round(cluster, node)
                for i in range(rounds):
                    mode = "same" if i % 2 == 0 else "cross"
                    seconds, sig = await one_round(cluster, "n1" if mode == "same" else "n2")
                    results[mode].append(seconds)
                    signaling[mode].append(sig)
                    print(
                        f"round {i + 1:2d} {mode:5s} first frame {seconds * 1000:7.1f} ms,"
                        f" client's join->joined + offer->answer {sig * 1000:6.1f} ms",
                        flush=True,
                    )
    summary = {
        f"{kind}_{mode}": {
            "n": len(values),
            "median_ms": round(statistics.median(values) * 1000, 1),
            "p95_ms": round(p95(values) * 1000, 1),
            "min_ms": round(min(values) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1),
        }
        for kind, table in (("first_frame", results), ("signaling", signaling))
        for mode, values in table.items()
        if values
    }
    print(f"{'':20s} {'n':>3s} {'median':>8s} {'p95':>8s} {'min':>8s} {'max':>8s}  (ms)")
    for mode, row in summary.items():
        print(
            f"{mode:20s} {row['n']:3d} {row['median_ms']:8.1f} {row['p95_ms']:8.1f}"
            f" {row['min_ms']:8.1f} {row['max_ms']:8.1f}"
        )
    for kind in ("first_frame", "signaling"):
        added = summary[f"{kind}_cross"]["p95_ms"] - summary[f"{kind}_same"]["p95_ms"]
        print(f"{kind}: added at p95 by the cross-node path: {added:.1f} ms (target < 50 ms)")
    return {
        "rounds": rounds,
        "first_frame_s": results,
        "signaling_s": signaling,
        "summary": summary,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="alternating same/cross (20)")
    args = parser.parse_args()
    started = time.time()
    report = asyncio.run(main(max(2, args.rounds)))
    report["seconds"] = round(time.time() - started, 1)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / f"cluster_join-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
