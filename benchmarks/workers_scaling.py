"""Media throughput with 1 vs N workers (issue #12: >= 1.8x with 2 workers, 0 loss).

`sprechzimmer serve --workers N` runs N independent node processes, each with its own relay and
its own slice of the UDP range; a room lives on one of them and its media touches no other. So
the media side of N workers is N relay processes that share nothing, which is what this measures:
one group of 1 relay process and one of N, unpinned (as the supervisor starts them: the kernel
places them), fed by the same generator in the same run (relay_load.py's synthetic peers,
pre-protected SRTP, rooms spread round-robin over the group's relays).

The rate goes up by ``--step-factor`` per step, both groups measured at each step, interleaved
(1, N, N, 1, ...), until a group's median window loses packets or its p99 exceeds the bound; the
highest rate each group sustained is its capacity, and their ratio the scaling figure.

On a 2-core machine the generator needs CPU too (it runs on the same cores), so 2 workers can at
most use what the generator leaves: the printed ratio is a lower bound of what 2 workers give on
a machine where the load comes from elsewhere. The CPU per forwarded packet of each group shows
whether a worker costs more per packet when there are more of them (it should not: nothing is
shared).

    PYTHONPATH=. .venv/bin/python benchmarks/workers_scaling.py              # ~4 min
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import json
import os
import platform
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchmarks import relay_load

RESULTS = Path(__file__).parent / "results" / "workers_scaling.json"
PORTS_PER_WORKER = 200


def worker_process(conn: Connection, port_min: int, port_max: int) -> None:
    """One worker's relay, as `serve --workers` runs it: not pinned to a core."""
    asyncio.run(relay_load._serve_relay(conn, port_min, port_max, "127.0.0.1"))


class WorkerGroup:
    """N relay processes behind relay_load's handle interface: rooms go round-robin, counters
    and CPU add up, so relay_load's connect_rooms and run_step drive the group unchanged."""

    def __init__(self, workers: int, port_base: int) -> None:
        self.handles = [
            relay_load.RelayHandle(
                0,
                0,
                target=worker_process,
                args=(
                    port_base + i * PORTS_PER_WORKER,
                    port_base + (i + 1) * PORTS_PER_WORKER - 1,
                ),
            )
            for i in range(workers)
        ]
        self._next = itertools.cycle(range(workers))
        self._rooms: list[tuple[int, int]] = []  # group room id -> (worker, its room id)

    async def call(self, command: str, *args: Any, timeout: float = 30.0) -> Any:
        if command == "room":
            worker = next(self._next)
            self._rooms.append((worker, await self.handles[worker].call("room")))
            return len(self._rooms) - 1
        if command == "connect":
            room, seat, offer = args
            worker, own = self._rooms[room]
            return await self.handles[worker].call("connect", own, seat, offer, timeout=timeout)
        answers = await asyncio.gather(*(h.call(command, *args) for h in self.handles))
        if command == "states":
            # in the group's room order, as connect_rooms expects
            per_worker = [iter(a) for a in answers]
            ordered: list[str] = []
            for worker, _ in self._rooms:
                ordered += [next(per_worker[worker]), next(per_worker[worker])]
            return ordered
        if command == "counters":
            total: dict[str, Any] = {}
            for counters in answers:
                for key, value in counters.items():
                    if isinstance(value, list):
                        old = total.get(key, [0] * len(value))
                        total[key] = [a + b for a, b in zip(old, value, strict=True)]
                    else:
                        total[key] = total.get(key, 0) + value
            return total
        return answers

    def cpu_seconds(self) -> float:
        return sum(h.cpu_seconds() for h in self.handles)

    def rss_kib(self) -> int:
        return sum(h.rss_kib() for h in self.handles)

    async def close(self) -> None:
        for handle in self.handles:
            await handle.close()


def sustained(windows: list[relay_load.StepResult], bound_ms: float) -> bool:
    loss = statistics.median(w.loss for w in windows)
    p99 = statistics.median(w.latency_p99_ms for w in windows)
    return loss == 0 and p99 <= bound_ms


async def run(args: argparse.Namespace) -> dict[str, Any]:
    groups = {1: WorkerGroup(1, 43000), args.workers: WorkerGroup(args.workers, 43200)}
    peers: dict[int, list[relay_load.Peer]] = {}
    rows: list[dict[str, Any]] = []
    best: dict[int, float] = {}
    try:
        for n, group in groups.items():
            started = time.monotonic()
            peers[n] = await relay_load.connect_rooms(group, args.rooms, same_ids=False)  # type: ignore[arg-type]
            print(
                f"  {n} worker(s): {args.rooms} rooms connected in "
                f"{time.monotonic() - started:.1f} s",
                file=sys.stderr,
            )
        alive = set(groups)
        multiplier = args.start_multiplier
        step = 0
        while alive and multiplier <= args.max_multiplier:
            windows: dict[int, list[relay_load.StepResult]] = {n: [] for n in alive}
            order = sorted(alive)
            for repeat in range(args.repeats):
                for n in order if repeat % 2 == 0 else reversed(order):
                    result = await relay_load.run_step(
                        groups[n],  # type: ignore[arg-type]
                        peers[n],
                        args.rooms,
                        multiplier,
                        args.warmup,
                        args.measure,
                        step,
                    )
                    step += 1
                    windows[n].append(result)
                    print(
                        f"  x{multiplier:.2f} {n} worker(s): {relay_load.short(result)}",
                        file=sys.stderr,
                    )
            for n, results in windows.items():
                row = {
                    "workers": n,
                    "multiplier": multiplier,
                    "offered_pps": statistics.median(r.offered_pps for r in results),
                    "received_pps": statistics.median(r.received_pps for r in results),
                    "loss": statistics.median(r.loss for r in results),
                    "p99_ms": statistics.median(r.latency_p99_ms for r in results),
                    "cpu_us_per_packet": statistics.median(
                        r.relay_cpu_us_per_packet for r in results
                    ),
                    "relay_cpu": statistics.median(r.relay_cpu_fraction for r in results),
                    "generator_cpu": statistics.median(r.generator_cpu_fraction for r in results),
                }
                rows.append(row)
                if sustained(results, args.p99_bound_ms):
                    best[n] = row["received_pps"]
                else:
                    alive.discard(n)
            if any(
                statistics.median(r.generator_cpu_fraction for r in results) > 0.9
                for results in windows.values()
            ):
                print("  the generator is saturated: stopping", file=sys.stderr)
                break
            multiplier *= args.step_factor
    finally:
        for n, group in groups.items():
            await relay_load.close_peers(peers.get(n, []))
            await group.close()
    return {"rows": rows, "best": best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rooms", type=int, default=20, help="rooms per group")
    parser.add_argument("--start-multiplier", type=float, default=1.0)
    parser.add_argument("--step-factor", type=float, default=1.25)
    parser.add_argument("--max-multiplier", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3, help="windows per group and step")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--measure", type=float, default=3.0)
    parser.add_argument("--p99-bound-ms", type=float, default=20.0)
    args = parser.parse_args()
    started = time.monotonic()
    result = asyncio.run(run(args))
    print(
        f"1 vs {args.workers} workers (relay processes, unpinned), {args.rooms} rooms per group, "
        f"{relay_load.VIDEO_PPS + relay_load.AUDIO_PPS} pkt/s per peer at 1x, "
        f"{args.repeats} interleaved windows of {args.warmup:g}+{args.measure:g} s per step"
    )
    print(
        f"{'workers':>7} {'rate':>5} {'offered/s':>10} {'recv/s':>10} {'loss':>7} {'p99 ms':>7} "
        f"{'us/pkt':>7} {'relay CPU':>9} {'gen CPU':>7}"
    )
    for r in result["rows"]:
        print(
            f"{r['workers']:>7} x{r['multiplier']:<4.2f} {r['offered_pps']:>10,.0f} "
            f"{r['received_pps']:>10,.0f} {r['loss']:>7.3%} {r['p99_ms']:>7.2f} "
            f"{r['cpu_us_per_packet']:>7.1f} {r['relay_cpu']:>9.0%} {r['generator_cpu']:>7.0%}"
        )
    best = result["best"]
    for n in sorted(best):
        print(f"{n} worker(s): highest sustained {best[n]:,.0f} pkt/s forwarded")
    if 1 in best and args.workers in best:
        print(f"ratio {args.workers}/1 workers: {best[args.workers] / best[1]:.2f}")
    print(f"took {time.monotonic() - started:.0f} s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "workers_scaling",
                "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
                "settings": vars(args),
                "rows": result["rows"],
                "best": {str(k): v for k, v in best.items()},
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
