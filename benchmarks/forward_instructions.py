"""Instructions per ``Forwarder.on_rtp`` call, counted by valgrind's callgrind.

Wall-clock timings on a shared 2-core machine drift 2-3x within seconds; instruction counts do
not. This script runs a fixed workload (the packets of ``relay_hotpath.py``: video 1100 B and
audio 100 B with a one-byte extension block, in the ``rewrite`` and ``identity`` negotiations)
twice under callgrind, with ``--small`` and ``--large`` packets per stream, and reports the
difference divided by the extra packets: the instructions one forwarded packet costs, with the
interpreter's start-up and the set-up cancelled out.

    PYTHONPATH=. .venv/bin/python benchmarks/forward_instructions.py
    PYTHONPATH=/tmp/before .venv/bin/python benchmarks/forward_instructions.py  # another tree

Only the forwarder runs in the counted region: packets are built before it, SRTP is not
involved, and the sink is a list append. It builds the legs' parameters itself (not through
``relay_hotpath.leg_params``) so the same script can measure an older tree whose parameter type
had other fields.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

SCENARIOS = ("rewrite", "identity")
KINDS = ("video", "audio")


def workload(scenario: str, kind: str, packets: int) -> None:
    """Forward ``packets`` packets of one stream; what callgrind counts."""
    # the packets and legs of the measured tree's own relay_hotpath.py (the tree on PYTHONPATH)
    tree = Path(importlib.util.find_spec("sfu").origin).parent.parent
    sys.path.insert(0, str(tree / "benchmarks"))
    import relay_hotpath as bench

    from sfu.forwarder import Endpoint, Forwarder
    from sfu.media_params import KindParams

    names = {f.name for f in dataclasses.fields(KindParams)}

    def params(leg: bench.LegNumbering, local_ssrc: dict[str, int]) -> dict[str, KindParams]:
        out = {}
        for k in KINDS:
            values = {
                "kind": k,
                "mid": leg.mid[k],
                "payload_type": leg.payload_type[k],
                "rtx_payload_type": leg.payload_type[k] + 1 if k == "video" else None,
                "clock_rate": bench.CLOCK_RATE[k],
                "ext_ids": leg.ext_ids[k],
                "local_ssrc": local_ssrc[k],
                "local_rtx_ssrc": local_ssrc[k] + 1 if k == "video" else None,
                "feedback": frozenset({("nack", None), ("nack", "pli"), ("transport-cc", None)}),
                "remote_ssrcs": (),  # only in older trees
            }
            out[k] = KindParams(**{n: v for n, v in values.items() if n in names})
        return out

    source_leg, sink_leg = bench.SCENARIOS[scenario]
    sink = bench.CollectingWire()
    forwarder = Forwarder()
    forwarder.set_source(Endpoint(params(source_leg, {"audio": 1, "video": 3}), bench.SourceWire()))
    forwarder.set_sink(Endpoint(params(sink_leg, bench.SINK_SSRC), sink))
    source = bench.PacketSource(source_leg, kind)
    warm = source.chunk(64)  # the first packet creates the route; not part of the steady state
    plain = source.chunk(packets)
    for data in warm:
        forwarder.on_rtp(data)
    on_rtp = forwarder.on_rtp
    for data in plain:
        on_rtp(data)
    if len(sink.packets) != len(warm) + packets:
        raise RuntimeError("the forwarder dropped packets")


def count(scenario: str, kind: str, packets: int) -> int:
    """Instructions callgrind collects for a whole run of the workload."""
    # one run outside callgrind first, so every module's .pyc is written: otherwise whichever
    # run compiles an edited module pays for it, and the difference is off by the compiler
    command = [sys.executable, __file__, "--run", scenario, kind, "1"]
    subprocess.run(command, capture_output=True, check=True)
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--run",
            scenario,
            kind,
            str(packets),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        check=False,
    )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind failed:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=11000)
    parser.add_argument("--run", nargs=3, metavar=("SCENARIO", "KIND", "PACKETS"))
    args = parser.parse_args()
    if args.run:
        scenario, kind, packets = args.run
        workload(scenario, kind, int(packets))
        return
    import sfu.forwarder

    print(f"instructions per on_rtp, {sfu.forwarder.__file__}")
    for scenario in SCENARIOS:
        for kind in KINDS:
            small = count(scenario, kind, args.small)
            large = count(scenario, kind, args.large)
            per_packet = (large - small) / (args.large - args.small)
            print(f"{scenario:<9} {kind:<6} {per_packet:>10,.0f}", flush=True)


if __name__ == "__main__":
    main()
