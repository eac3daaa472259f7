"""Cost of the relay's per-packet path, in process, without a network.

The path a forwarded RTP packet takes through the relay is: SRTP unprotect (the source leg's
session) -> ``Forwarder.on_rtp`` (SSRC / payload type / header-extension / seq / ts rewrite,
packet cache, reception stats) -> SRTP protect (the sink leg's session) -> ``sendto``. This script
times each stage alone and the whole (without the syscall: the sink is the real ``Wire`` on a
socket whose ``sendto`` discards), with real ``pylibsrtp`` sessions and realistic packets:

- video: 1100-byte payload, one-byte header-extension block with mid, abs-send-time and
  transport-cc (12 bytes after padding);
- audio: 100-byte payload, mid, audio level, abs-send-time and transport-cc.

Two negotiations are measured: ``rewrite`` (the legs use different payload types and
header-extension ids, e.g. Chrome <-> Firefox, so every packet's extension block is rebuilt) and
``identity`` (same ids, e.g. two Chromes; the block is forwarded as is).

Timing: ``time.perf_counter_ns`` around tight loops over pre-built packets, in chunks of
``--chunk`` packets (inputs are prepared outside the timed region), ``--packets`` per
repetition, best of ``--repeats``. Sequence numbers keep increasing across chunks and
repetitions, so libsrtp's replay windows accept every packet.

    PYTHONPATH=. .venv/bin/python benchmarks/relay_hotpath.py
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import struct
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pylibsrtp
from rtp_packets import (
    ABS_SEND_TIME_URI,
    AUDIO_LEVEL_URI,
    MID_URI,
    TRANSPORT_CC_URI,
    browser_extension_block,
)

from sfu.forwarder import Endpoint, Forwarder
from sfu.media_params import KindParams
from sfu.rtp import RTCP_SECOND_MAX, RTCP_SECOND_MIN, SRTP_FIRST_MAX, SRTP_FIRST_MIN
from sfu.wire import Wire

VIDEO_PAYLOAD_BYTES = 1100  # a full VP8 packet under a 1200-byte MTU budget
AUDIO_PAYLOAD_BYTES = 100  # Opus at ~40 kbit/s, 20 ms frames
SOURCE_SSRC = {"audio": 0x11111111, "video": 0x22222222}
SINK_SSRC = {"audio": 0x33333333, "video": 0x44444444}
CLOCK_RATE = {"audio": 48000, "video": 90000}
TS_STEP = {"audio": 960, "video": 450}  # 20 ms of Opus; 200 video packets/s at 90 kHz

RESULTS_DIR = Path(__file__).resolve().parent / "results"


# --- one scenario: the negotiation of both legs ------------------------------------------


@dataclass(frozen=True)
class LegNumbering:
    """What one leg negotiated, in the form the bench needs."""

    payload_type: dict[str, int]
    ext_ids: dict[str, dict[str, int]]
    mid: dict[str, str]


CHROME_LIKE = LegNumbering(
    payload_type={"audio": 111, "video": 96},
    ext_ids={
        "audio": {MID_URI: 4, ABS_SEND_TIME_URI: 2, TRANSPORT_CC_URI: 3, AUDIO_LEVEL_URI: 1},
        "video": {MID_URI: 4, ABS_SEND_TIME_URI: 2, TRANSPORT_CC_URI: 3},
    },
    mid={"audio": "0", "video": "1"},
)
FIREFOX_LIKE = LegNumbering(
    payload_type={"audio": 109, "video": 120},
    ext_ids={
        "audio": {MID_URI: 3, ABS_SEND_TIME_URI: 7, TRANSPORT_CC_URI: 8, AUDIO_LEVEL_URI: 1},
        "video": {MID_URI: 3, ABS_SEND_TIME_URI: 7, TRANSPORT_CC_URI: 8},
    },
    mid={"audio": "0", "video": "1"},
)
SCENARIOS = {"rewrite": (CHROME_LIKE, FIREFOX_LIKE), "identity": (CHROME_LIKE, CHROME_LIKE)}


def leg_params(leg: LegNumbering, local_ssrc: dict[str, int]) -> dict[str, KindParams]:
    feedback = frozenset({("nack", None), ("nack", "pli"), ("transport-cc", None)})
    return {
        kind: KindParams(
            kind=kind,
            mid=leg.mid[kind],
            payload_type=leg.payload_type[kind],
            rtx_payload_type=leg.payload_type[kind] + 1 if kind == "video" else None,
            clock_rate=CLOCK_RATE[kind],
            ext_ids=leg.ext_ids[kind],
            local_ssrc=local_ssrc[kind],
            local_rtx_ssrc=local_ssrc[kind] + 1 if kind == "video" else None,
            feedback=feedback if kind == "video" else frozenset({("transport-cc", None)}),
        )
        for kind in ("audio", "video")
    }


# --- packets -------------------------------------------------------------------------------


class PacketSource:
    """An endless, numbered RTP stream of one kind from one leg: chunks of plain packets."""

    def __init__(self, leg: LegNumbering, kind: str) -> None:
        self.leg = leg
        self.kind = kind
        self.index = 0
        size = VIDEO_PAYLOAD_BYTES if kind == "video" else AUDIO_PAYLOAD_BYTES
        self.payload = os.urandom(size)

    def chunk(self, count: int) -> list[bytes]:
        kind, leg = self.kind, self.leg
        packets = []
        for _ in range(count):
            i = self.index
            self.index += 1
            seq = i & 0xFFFF
            ts = (i * TS_STEP[kind]) & 0xFFFFFFFF
            marker = 0x80 if kind == "video" and i % 7 == 6 else 0
            header = struct.pack(
                "!BBHII", 0x90, marker | leg.payload_type[kind], seq, ts, SOURCE_SSRC[kind]
            )
            block = browser_extension_block(leg.ext_ids[kind], leg.mid[kind], kind, i)
            packets.append(header + block + self.payload)
        return packets


def srtp_pair() -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    """A sending and a receiving session with the same key (one direction of one leg)."""
    key = os.urandom(30)  # AES_CM_128_HMAC_SHA1_80: 16-byte key + 14-byte salt
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    return tx, rx


class DiscardingSocket:
    """Stands in for the sink leg's UDP socket: the bench measures Python, not the kernel."""

    def sendto(self, data: bytes, addr: tuple[str, int]) -> int:
        return len(data)


class SourceWire:
    """The source leg's wire; only RTCP (keyframe requests) would ever go this way."""

    def send_rtp(self, packet: bytes) -> None:
        pass

    def send_rtcp(self, packet: bytes) -> None:
        pass


class CollectingWire:
    """A sink that keeps what the forwarder hands it (for the forward-only stage)."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.send_rtp = self.packets.append

    def send_rtcp(self, packet: bytes) -> None:
        pass


def make_forwarder(scenario: str, sink_wire: object) -> Forwarder:
    source_leg, sink_leg = SCENARIOS[scenario]
    forwarder = Forwarder()
    forwarder.set_source(Endpoint(leg_params(source_leg, {"audio": 1, "video": 3}), SourceWire()))
    forwarder.set_sink(Endpoint(leg_params(sink_leg, SINK_SSRC), sink_wire))  # type: ignore[arg-type]
    return forwarder


def real_wire(tx: pylibsrtp.Session) -> Wire:
    _, rx_unused = srtp_pair()
    return Wire(
        rx_srtp=rx_unused,
        tx_srtp=tx,
        sock=DiscardingSocket(),  # type: ignore[arg-type]
        remote_addr=("127.0.0.1", 9),
        candidate_type="host",
    )


# --- the stages ----------------------------------------------------------------------------


@dataclass
class StageResult:
    scenario: str
    kind: str
    stage: str
    packets: int
    best_ns_per_packet: float
    all_ns_per_packet: list[float]

    @property
    def packets_per_second(self) -> float:
        return 1e9 / self.best_ns_per_packet


# A stage: given how many packets, prepare inputs (untimed) and return the timed nanoseconds.
Stage = Callable[[int], int]


def unprotect_stage(scenario: str, kind: str) -> Stage:
    source = PacketSource(SCENARIOS[scenario][0], kind)
    tx, rx = srtp_pair()

    def run(count: int) -> int:
        protected = [tx.protect(p) for p in source.chunk(count)]
        unprotect = rx.unprotect
        start = time.perf_counter_ns()
        for data in protected:
            unprotect(data)
        return time.perf_counter_ns() - start

    return run


class ForwardedStream:
    """One stream through a forwarder into a ``CollectingWire``: the forward and protect stages."""

    def __init__(self, scenario: str, kind: str) -> None:
        self.source = PacketSource(SCENARIOS[scenario][0], kind)
        self.sink = CollectingWire()
        self.forwarder = make_forwarder(scenario, self.sink)

    def forward(self, plain: list[bytes]) -> tuple[list[bytes], int]:
        """What the forwarder emits for ``plain`` and the ns it took; all of it, or an error."""
        packets = self.sink.packets
        packets.clear()
        on_rtp = self.forwarder.on_rtp
        start = time.perf_counter_ns()
        for data in plain:
            on_rtp(data)
        elapsed = time.perf_counter_ns() - start
        if len(packets) != len(plain):
            raise RuntimeError(f"forwarder dropped {len(plain) - len(packets)} packets")
        return list(packets), elapsed


def forward_stage(scenario: str, kind: str) -> Stage:
    stream = ForwardedStream(scenario, kind)

    def run(count: int) -> int:
        return stream.forward(stream.source.chunk(count))[1]

    return run


def protect_stage(scenario: str, kind: str) -> Stage:
    """Protect what the forwarder produced (its output, not its input: that is what is sent)."""
    stream = ForwardedStream(scenario, kind)
    tx, _ = srtp_pair()

    def run(count: int) -> int:
        forwarded, _ = stream.forward(stream.source.chunk(count))
        protect = tx.protect
        start = time.perf_counter_ns()
        for data in forwarded:
            protect(data)
        return time.perf_counter_ns() - start

    return run


def total_stage(scenario: str, kind: str) -> Stage:
    """What ``wire._install_reader``'s drain does per RTP datagram, minus the syscalls."""
    source = PacketSource(SCENARIOS[scenario][0], kind)
    browser_tx, relay_rx = srtp_pair()
    relay_tx, _ = srtp_pair()
    wire = real_wire(relay_tx)
    forwarder = make_forwarder(scenario, wire)

    def run(count: int) -> int:
        protected = [browser_tx.protect(p) for p in source.chunk(count)]
        unprotect, unprotect_rtcp, on_rtp = (
            relay_rx.unprotect,
            relay_rx.unprotect_rtcp,
            forwarder.on_rtp,
        )
        # the drain loop's inline demultiplexing (sfu.rtp's byte ranges, bound to locals)
        srtp_min, srtp_max = SRTP_FIRST_MIN, SRTP_FIRST_MAX
        rtcp_min, rtcp_max = RTCP_SECOND_MIN, RTCP_SECOND_MAX
        start = time.perf_counter_ns()
        for data in protected:
            if len(data) > 1 and srtp_min <= data[0] <= srtp_max:
                try:
                    if rtcp_min <= data[1] <= rtcp_max:
                        unprotect_rtcp(data)
                    else:
                        on_rtp(unprotect(data))
                except pylibsrtp.Error:
                    pass
        elapsed = time.perf_counter_ns() - start
        if wire.dropped_sends:
            raise RuntimeError(f"wire dropped {wire.dropped_sends} packets")
        return elapsed

    return run


STAGES: dict[str, Callable[[str, str], Stage]] = {
    "unprotect": unprotect_stage,
    "forward": forward_stage,
    "protect": protect_stage,
    "total": total_stage,
}


def check_rewrite(scenario: str, kind: str) -> None:
    """Fail loudly unless the forwarder really emits the sink leg's PT, SSRC and extension ids."""
    sink_leg = SCENARIOS[scenario][1]
    sink = CollectingWire()
    forwarder = make_forwarder(scenario, sink)
    forwarder.on_rtp(PacketSource(SCENARIOS[scenario][0], kind).chunk(1)[0])
    out = sink.packets[0]
    pt, ssrc = out[1] & 0x7F, struct.unpack_from("!I", out, 8)[0]
    ids = {out[16] >> 4}  # first element of the one-byte block: mid
    expected_ids = {sink_leg.ext_ids[kind][MID_URI]}
    if pt != sink_leg.payload_type[kind] or ssrc != SINK_SSRC[kind] or ids != expected_ids:
        raise RuntimeError(f"{scenario}/{kind}: forwarded pt={pt} ssrc={ssrc:#x} ids={ids}")


def measure(stage: Stage, packets: int, chunk: int, repeats: int) -> list[float]:
    """ns per packet for each repetition; every repetition times ``packets`` packets."""
    stage(min(chunk, 2000))  # warm up: routes, caches, first-use allocations
    results = []
    for _ in range(repeats):
        total_ns = 0
        remaining = packets
        while remaining > 0:
            n = min(chunk, remaining)
            gc.collect()
            total_ns += stage(n)
            remaining -= n
        results.append(total_ns / packets)
    return results


# --- allocations ---------------------------------------------------------------------------


@dataclass
class Allocations:
    scenario: str
    kind: str
    retained_blocks_per_packet: float  # sys.getallocatedblocks() growth in steady state
    peak_bytes_in_flight: int  # tracemalloc peak above baseline while one packet is handled


def measure_allocations(scenario: str, kind: str, count: int = 5000) -> Allocations:
    """Net retained memory blocks per packet (leaks / unbounded growth) and one packet's peak."""
    source = PacketSource(SCENARIOS[scenario][0], kind)
    browser_tx, relay_rx = srtp_pair()
    relay_tx, _ = srtp_pair()
    forwarder = make_forwarder(scenario, real_wire(relay_tx))
    warm = [browser_tx.protect(p) for p in source.chunk(2048)]  # fill the 1024-slot packet cache
    for data in warm:
        forwarder.on_rtp(relay_rx.unprotect(data))
    protected = [browser_tx.protect(p) for p in source.chunk(count)]
    gc.collect()
    gc.disable()
    try:
        before = sys.getallocatedblocks()
        for data in protected:
            forwarder.on_rtp(relay_rx.unprotect(data))
        after = sys.getallocatedblocks()
        one = browser_tx.protect(source.chunk(1)[0])
        tracemalloc.start()
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        forwarder.on_rtp(relay_rx.unprotect(one))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        gc.enable()
    return Allocations(scenario, kind, (after - before) / count, peak - base)


# --- main ----------------------------------------------------------------------------------


def run_all(
    scenarios: list[str], kinds: list[str], packets: int, chunk: int, repeats: int
) -> Iterator[StageResult]:
    for scenario in scenarios:
        for kind in kinds:
            check_rewrite(scenario, kind)
            for name, make in STAGES.items():
                per_packet = measure(make(scenario, kind), packets, chunk, repeats)
                yield StageResult(scenario, kind, name, packets, min(per_packet), per_packet)


def format_table(results: list[StageResult], allocations: list[Allocations]) -> str:
    rows = {}
    for r in results:
        rows.setdefault((r.scenario, r.kind), {})[r.stage] = r
    allocs = {(a.scenario, a.kind): a for a in allocations}
    header = (
        f"{'scenario':<9} {'kind':<6} {'unprotect':>10} {'forward':>10} {'protect':>10} "
        f"{'total':>10} {'total pkt/s':>12} {'retained':>9} {'peak B':>7}"
    )
    lines = [header, "-" * len(header)]
    for (scenario, kind), stages in rows.items():
        cells = [f"{stages[s].best_ns_per_packet / 1000:>8.2f}us" for s in STAGES if s in stages]
        pps = stages["total"].packets_per_second if "total" in stages else float("nan")
        a = allocs.get((scenario, kind))
        alloc_cells = (
            f"{a.retained_blocks_per_packet:>9.3f} {a.peak_bytes_in_flight:>7}" if a else ""
        )
        lines.append(f"{scenario:<9} {kind:<6} {' '.join(cells)} {pps:>12,.0f} {alloc_cells}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=200_000, help="packets per repetition")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions; the best is kept")
    parser.add_argument("--chunk", type=int, default=10_000, help="packets prepared at a time")
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--kind", choices=["audio", "video", "all"], default="all")
    parser.add_argument(
        "--json", type=Path, default=RESULTS_DIR / "relay_hotpath.json", help="where to write"
    )
    args = parser.parse_args()
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    kinds = ["video", "audio"] if args.kind == "all" else [args.kind]

    started = time.monotonic()
    results = []
    for result in run_all(scenarios, kinds, args.packets, args.chunk, args.repeats):
        results.append(result)
        print(
            f"  {result.scenario:<9} {result.kind:<6} {result.stage:<10} "
            f"{result.best_ns_per_packet / 1000:7.2f} us/packet (best of {args.repeats})",
            file=sys.stderr,
            flush=True,
        )
    allocations = [measure_allocations(s, k) for s in scenarios for k in kinds]
    elapsed = time.monotonic() - started

    print(
        f"relay hot path, {args.packets} packets x best of {args.repeats}, "
        f"python {platform.python_version()}, pylibsrtp {pylibsrtp.__version__}, "
        f"{os.cpu_count()} cores"
    )
    print(format_table(results, allocations))
    print("retained: sys.getallocatedblocks() growth per packet in steady state (0 = no growth);")
    print("peak B: tracemalloc peak bytes above baseline while one packet is handled")
    print(f"took {elapsed:.0f} s")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "relay_hotpath",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "python": platform.python_version(),
        "pylibsrtp": pylibsrtp.__version__,
        "settings": {"packets": args.packets, "repeats": args.repeats, "chunk": args.chunk},
        "results": [
            {
                **asdict(r),
                "best_us_per_packet": r.best_ns_per_packet / 1000,
                "packets_per_second": r.packets_per_second,
            }
            for r in results
        ],
        "allocations": [asdict(a) for a in allocations],
        "seconds": round(elapsed, 1),
    }
    args.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
