"""Video over a lossy, jittery link through the relay: freezes and recovered packets.

One aiortc peer sends VP8 (320x240, 30 fps) through a real ``Relay`` to a second peer whose link
to the relay loses packets and jitters (a user-space network emulator on 127.0.0.1: this kernel
has no netem). Reports frames decoded, freezes, and how the relay's NACK cache and keyframe
requests recovered losses. Uses the test suite's peers (tests/sfu/media_peers.py).

    PYTHONPATH=. .venv/bin/python benchmarks/relay_loss.py [--seconds 20] [--loss 0 0.05 0.10]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

from sfu import Relay, RelayConfig
from tests.sfu.lossy_link import LossyLink, relay_address, through, without_candidates
from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE, MediaPeer, use_loopback_only

FREEZE = 0.5  # seconds without a new frame that a viewer notices as a freeze


async def run(loss: float, seconds: float, jitter: float) -> dict[str, Any]:
    relay = Relay(
        RelayConfig(udp_port_min=45000, udp_port_max=45099, listen_addresses=("127.0.0.1",))
    )
    room = relay.create_room()
    sender, receiver = MediaPeer(RED_BLUE, tone=440), MediaPeer(GREEN_WHITE, tone=880)
    link = LossyLink(loss=loss, delay=jitter / 2, jitter=jitter / 2)
    try:
        await sender.accept(await room.connect("a", await sender.offer()))
        answer = await room.connect("b", without_candidates(await receiver.offer()))
        await receiver.accept(through(answer, await link.start(relay_address(answer))))
        await receiver.wait_for(lambda r: r.video_frames >= 5, timeout=20)
        start, frames = time.monotonic(), receiver.received.video_frames
        await asyncio.sleep(seconds)
        counters = room.forwarders()[0].counters.as_dict()
        times = [t for t in receiver.received.video_times if t >= start]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        return {
            "loss": loss,
            "jitter_ms": jitter * 1000,
            "seconds": seconds,
            "frames": receiver.received.video_frames - frames,
            "fps": (receiver.received.video_frames - frames) / seconds,
            "freezes": sum(1 for g in gaps if g > FREEZE),
            "longest_freeze_s": max(gaps, default=0.0),
            "link_dropped": link.dropped,
            "nacks_received": counters["nacks_received"],
            "recovered_from_cache": counters["retransmit_hits"],
            "cache_misses": counters["retransmit_misses"],
            "nacks_upstream": counters["nack_upstream"],
            "keyframe_requests_received": counters["keyframe_requests_received"],
            "keyframe_requests_sent": counters["keyframe_requests_sent"],
        }
    finally:
        link.close()
        await sender.close()
        await receiver.close()
        await relay.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--loss", type=float, nargs="+", default=[0.0, 0.05, 0.10])
    parser.add_argument("--jitter-ms", type=float, default=50.0)
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "relay_loss.json"
    )
    args = parser.parse_args()
    use_loopback_only()
    results = [asyncio.run(run(loss, args.seconds, args.jitter_ms / 1000)) for loss in args.loss]
    header = f"{'loss':>5} {'fps':>5} {'freezes':>7} {'longest':>8} {'dropped':>7} {'NACKs':>6} {'from cache':>10} {'misses':>6} {'PLI in':>6} {'PLI up':>6}"
    print(header)
    for r in results:
        print(
            f"{r['loss']:>5.0%} {r['fps']:>5.1f} {r['freezes']:>7} {r['longest_freeze_s']:>7.2f}s"
            f" {r['link_dropped']:>7} {r['nacks_received']:>6} {r['recovered_from_cache']:>10}"
            f" {r['cache_misses']:>6} {r['keyframe_requests_received']:>6} {r['keyframe_requests_sent']:>6}"
        )
    print(
        f"freeze: no new frame for more than {FREEZE}s; jitter {args.jitter_ms:.0f} ms (uniform 0..{args.jitter_ms:.0f})"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "benchmark": "relay_loss",
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
