"""Memory per room with media flowing, and whether it grows (issue #17: <= 0.5 MiB per room).

For each room count, a fresh relay process (relay_load.py's, pinned to CPU 0) is measured three
times: idle before any room (the baseline), after the rooms connected, and at the end of
``--warmup`` + ``--measure`` seconds of media at 1x (200 video + 50 audio packets/s per peer,
the video 1100 bytes: the packet caches fill within their 0.5 s). Per room is the growth over the
baseline divided by the rooms; the slope between two counts removes what any first room costs
once (imports, the event loop's own buffers). Growth is the RSS change over the measured window
as MiB/min; ``--measure 3600`` is the hour the issue asks about: it runs as ``--window`` (60 s) windows
back to back, the growth then the least-squares slope of RSS over the windows.

    PYTHONPATH=. .venv/bin/python benchmarks/room_memory.py                 # ~2 min
    PYTHONPATH=. .venv/bin/python benchmarks/room_memory.py --rooms 50 --measure 3600
    PYTHONPATH=. .venv/bin/python benchmarks/room_memory.py --rooms 20 --where 15

``--where N`` traces the relay's Python allocations (tracemalloc) from before the rooms connect
and prints the N biggest allocating lines per room at the end; tracing costs CPU and memory of
its own, so its RSS figures are not the ones to quote. Memory outside Python (OpenSSL's DTLS
state, libsrtp) shows only in RSS.

RSS (VmRSS) is what the kernel holds for the process; Python keeps freed memory in its arenas, so
figures only ever show what was reached, not what is still in use.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

from benchmarks import relay_load

RESULTS = Path(__file__).parent / "results" / "room_memory.json"


async def measure(
    rooms: int, warmup: float, measure_seconds: float, step: int, where: int = 0, window: float = 60
) -> dict:
    relay = relay_load.RelayHandle(relay_load.PORT_MIN, relay_load.PORT_MAX)
    peers: list[relay_load.Peer] = []
    try:
        await relay.call("states")  # the relay process is up and idle
        baseline = relay.rss_kib()
        if where:
            await relay.call("trace_start", 1)
        peers = await relay_load.connect_rooms(relay, rooms, same_ids=False)
        connected = relay.rss_kib()
        # relay_load pre-builds (and pre-protects) every packet of a step before sending any, so
        # a long measurement runs as back-to-back windows: one hour-long step would hold
        # millions of packets and keep the generator from answering consent checks while it
        # builds them (the legs expire after 30 s and the hour measures nothing)
        first = await relay_load.run_step(
            relay, peers, rooms, 1.0, warmup, min(window, measure_seconds), step
        )
        results = [first]
        measured = min(window, measure_seconds)
        while measured < measure_seconds - 1e-6:
            length = min(window, measure_seconds - measured)
            step += 1
            results.append(await relay_load.run_step(relay, peers, rooms, 1.0, 0.0, length, step))
            measured += length
            print(
                f"    {measured:6.0f} s: RSS {results[-1].relay_rss_end_mib:.1f} MiB, "
                f"loss {results[-1].loss:.3%}",
                file=sys.stderr,
            )
        media_end = relay.rss_kib()
        states = await relay.call("states")
        sites = await relay.call("trace_top", where, "lineno") if where else []
        sent = sum(r.sent for r in results)
        received = sum(r.received for r in results)
        return {
            "rooms": rooms,
            "baseline_mib": baseline / 1024,
            "connected_mib": connected / 1024,
            "media_start_mib": first.relay_rss_start_mib,
            "media_end_mib": media_end / 1024,
            "per_room_connected_mib": (connected - baseline) / 1024 / rooms,
            "per_room_media_mib": (media_end - baseline) / 1024 / rooms,
            "growth_mib_per_min": growth_per_minute(results, window, measured),
            "rss_by_window_mib": [r.relay_rss_end_mib for r in results],
            "loss": 1 - received / sent if sent else 0.0,
            "legs_connected_at_end": states.count("connected"),
            "legs": len(states),
            "where": [
                {"kib_per_room": size / 1024 / rooms, "blocks_per_room": count / rooms, "at": at[0]}
                for size, count, at in sites
            ],
        }
    finally:
        await relay_load.close_peers(peers)
        await relay.close()


def growth_per_minute(
    results: list[relay_load.StepResult], window: float, measured: float
) -> float:
    """RSS growth over the measured time, MiB/min: a least-squares slope over the windows' end
    values once there are three or more (one window: its own start to end)."""
    if len(results) < 3:
        return (results[-1].relay_rss_end_mib - results[0].relay_rss_start_mib) / measured * 60
    xs = [i * window / 60 for i in range(len(results))]
    ys = [r.relay_rss_end_mib for r in results]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    return covariance / sum((x - mean_x) ** 2 for x in xs)


async def run(args: argparse.Namespace) -> list[dict]:
    rows = []
    for step, rooms in enumerate(args.rooms):
        row = await measure(rooms, args.warmup, args.measure, step * 1000, args.where, args.window)
        print(
            f"  {rooms} rooms: {row['baseline_mib']:.1f} -> {row['connected_mib']:.1f} "
            f"(connected) -> {row['media_end_mib']:.1f} MiB (media)",
            file=sys.stderr,
        )
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--measure", type=float, default=20.0)
    parser.add_argument(
        "--window",
        type=float,
        default=60.0,
        help="a longer --measure runs as windows of this many seconds (RSS read after each)",
    )
    parser.add_argument(
        "--where", type=int, default=0, help="print the N biggest Python allocation sites"
    )
    args = parser.parse_args()
    os.sched_setaffinity(0, {relay_load.GENERATOR_CPU})
    started = time.monotonic()
    rows = asyncio.run(run(args))
    print(
        f"relay RSS per room, media at 1x for {args.warmup:g}+{args.measure:g} s "
        "(VmRSS of the relay process over its idle baseline)"
    )
    print(
        f"{'rooms':>5} {'idle MiB':>8} {'conn MiB':>8} {'media MiB':>9} "
        f"{'MiB/room conn':>13} {'MiB/room media':>14} {'growth MiB/min':>14} {'loss':>7} "
        f"{'legs up':>7}"
    )
    for r in rows:
        print(
            f"{r['rooms']:>5} {r['baseline_mib']:>8.1f} {r['connected_mib']:>8.1f} "
            f"{r['media_end_mib']:>9.1f} {r['per_room_connected_mib']:>13.3f} "
            f"{r['per_room_media_mib']:>14.3f} {r['growth_mib_per_min']:>+14.3f} {r['loss']:>7.3%} "
            f"{r['legs_connected_at_end']:>3}/{r['legs']:<3}"
        )
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        slope = (last["media_end_mib"] - first["media_end_mib"]) / (last["rooms"] - first["rooms"])
        print(
            f"slope {first['rooms']} -> {last['rooms']} rooms: {slope:.3f} MiB per additional "
            "room with media"
        )
    for r in rows:
        if r["where"]:
            print(f"biggest Python allocation sites with {r['rooms']} rooms (tracemalloc):")
            for site in r["where"]:
                print(
                    f"  {site['kib_per_room']:7.1f} KiB/room {site['blocks_per_room']:8.1f} "
                    f"blocks/room  {site['at']}"
                )
    print(f"took {time.monotonic() - started:.0f} s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "room_memory",
                "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
                "settings": vars(args),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
