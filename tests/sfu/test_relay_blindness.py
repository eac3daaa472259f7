"""The relay's process decodes nothing, encodes nothing and writes no file while it forwards.

The peers run in a separate process (tests/sfu/peer_process.py) so that everything observed
here -- codec factories, jitter buffers, files opened for writing -- belongs to the relay.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import aiortc.codecs
import aiortc.jitterbuffer
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender

REPO = Path(__file__).resolve().parents[2]
_write_watch: list[str] | None = None
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _audit(event: str, args: tuple) -> None:
    if _write_watch is None or event != "open":
        return
    path, mode, flags = args
    writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
        isinstance(flags, int) and flags & _WRITE_FLAGS
    )
    if writing:
        _write_watch.append(str(path))


sys.addaudithook(_audit)  # audit hooks cannot be removed; it is inert unless a test arms it


async def test_relay_process_builds_no_codec_and_writes_no_file(relay, monkeypatch):
    global _write_watch
    built = []

    def counting(factory_name):
        original = getattr(aiortc.codecs, factory_name)

        def factory(codec):
            built.append((factory_name, codec.mimeType))
            return original(codec)

        return factory

    for module in (aiortc.codecs, aiortc.rtcrtpsender):
        monkeypatch.setattr(module, "get_encoder", counting("get_encoder"), raising=False)
    for module in (aiortc.codecs, aiortc.rtcrtpreceiver):
        monkeypatch.setattr(module, "get_decoder", counting("get_decoder"), raising=False)
    # aiortc builds an (empty) jitter buffer with every receiver; none may ever be fed a packet
    buffered = []
    original_add = aiortc.jitterbuffer.JitterBuffer.add

    def counting_add(self, packet):
        buffered.append(packet.sequence_number)
        return original_add(self, packet)

    monkeypatch.setattr(aiortc.jitterbuffer.JitterBuffer, "add", counting_add)

    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.sfu.peer_process",
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        offers = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))["offers"]
        _write_watch = []
        room = relay.create_room()
        answers = [await room.connect("a", offers[0]), await room.connect("b", offers[1])]
        process.stdin.write((json.dumps({"answers": answers}) + "\n").encode())
        await process.stdin.drain()
        result = json.loads(await asyncio.wait_for(process.stdout.readline(), 60))
        writes = list(_write_watch)
    finally:
        _write_watch = None
        if process.returncode is None:
            process.kill()
        await process.wait()

    assert result["a_sees_b"] and result["b_sees_a"], result
    assert min(result["frames"]) >= 15 and min(result["audio"]) >= 15, result
    forwarded = sum(f.counters.video_packets for f in room.forwarders())
    assert forwarded > 0
    assert built == []
    assert buffered == []
    assert writes == []
