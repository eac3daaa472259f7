"""One media peer in a process of its own, meant to run inside a network namespace.

Used by test_addresses_stay_private.py: the peer gathers ICE candidates on its namespace's
address only, and records everything the relay sends it, so the test can look for the other
peer's address in it.

Arguments: ADDRESS PICTURE EXPECTED RECORD_PATH, where PICTURE and EXPECTED name pictures of
tests.sfu.media_peers (``red_blue``, ``green_white``).

Protocol on stdin/stdout (one JSON object a line): prints {"offer": sdp}; reads
{"answer": sdp}; once it has decoded the other's picture (or given up) it
prints {"sees_other": bool, "frames": n}; once its record holds ENOUGH_RTP and ENOUGH_RTCP
packets (or it gave up) it prints {"enough": bool, "rtp": n, "rtcp": n} and keeps receiving; on
the next line from stdin it writes the record to RECORD_PATH, prints {"recorded": path} and
exits.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path

import aioice.ice
from aioice import stun

from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE, MediaPeer, looks_like

PICTURES = {"red_blue": RED_BLUE, "green_white": GREEN_WHITE}
TONES = {"red_blue": 440, "green_white": 880}
ENOUGH_FRAMES = 15
# Enough to search for the other's address: several relay receiver reports (one a second) and
# forwarded sender reports, and a few dozen media packets.
ENOUGH_RTP = 30
ENOUGH_RTCP = 4


class Record:
    """What this peer received from the relay, decrypted where SRTP applies."""

    def __init__(self) -> None:
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []
        self.stun_addresses: list[str] = []  # every address attribute of every STUN message
        self.senders: set[str] = set()  # source addresses of every datagram

    def as_json(self, answer: str) -> dict:
        def encoded(items: list[bytes]) -> list[str]:
            return [base64.b64encode(item).decode() for item in items]

        return {
            "answer": answer,
            "rtp": encoded(self.rtp),
            "rtcp": encoded(self.rtcp),
            "stun_addresses": self.stun_addresses,
            "senders": sorted(self.senders),
        }


def record_datagrams(record: Record) -> None:
    """Every UDP datagram this process's ICE sockets receive: its sender, and STUN addresses."""
    original = aioice.ice.StunProtocol.datagram_received

    def datagram_received(self, data, addr):  # type: ignore[no-untyped-def]
        record.senders.add(addr[0])
        try:
            message = stun.parse_message(data)
        except ValueError:
            message = None
        if message is not None:
            for value in message.attributes.values():
                if isinstance(value, tuple) and value and isinstance(value[0], str):
                    record.stun_addresses.append(value[0])
        return original(self, data, addr)

    aioice.ice.StunProtocol.datagram_received = datagram_received


def record_media(peer: MediaPeer, record: Record) -> None:
    """Wrap the peer's DTLS transports so every decrypted RTP and RTCP datagram is kept."""
    transports = {id(t.receiver.transport): t.receiver.transport for t in peer.pc.getTransceivers()}
    for transport in transports.values():
        _wrap(transport, record)


def _wrap(transport, record: Record) -> None:  # type: ignore[no-untyped-def]
    handle_rtp, handle_rtcp = transport._handle_rtp_data, transport._handle_rtcp_data

    async def rtp(data: bytes, arrival_time_ms: int) -> None:
        record.rtp.append(bytes(data))
        await handle_rtp(data, arrival_time_ms)

    async def rtcp(data: bytes) -> None:
        record.rtcp.append(bytes(data))
        await handle_rtcp(data)

    transport._handle_rtp_data, transport._handle_rtcp_data = rtp, rtcp


async def main(address: str, picture: str, expected: str, record_path: Path) -> None:
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [address]
    record = Record()
    record_datagrams(record)
    peer = MediaPeer(PICTURES[picture], tone=TONES[picture])
    print(json.dumps({"offer": await peer.offer()}), flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    answer = json.loads(line)["answer"]
    record_media(peer, record)
    await peer.accept(answer)
    want = PICTURES[expected]

    def sees_other(received) -> bool:  # type: ignore[no-untyped-def]
        return (
            received.video_frames >= ENOUGH_FRAMES
            and received.last_video is not None
            and looks_like(received.last_video, want)
        )

    seen = await peer.wait_for(sees_other, timeout=30)
    print(json.dumps({"sees_other": seen, "frames": peer.received.video_frames}), flush=True)
    enough = await until(
        lambda: len(record.rtp) >= ENOUGH_RTP and len(record.rtcp) >= ENOUGH_RTCP, timeout=30
    )
    print(json.dumps({"enough": enough, "rtp": len(record.rtp), "rtcp": len(record.rtcp)}))
    sys.stdout.flush()
    # media keeps flowing both ways until the test says stop: the other peer may still be
    # waiting for its frames, and everything received until then belongs in the record
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    record_path.write_text(json.dumps(record.as_json(answer)))
    print(json.dumps({"recorded": str(record_path)}), flush=True)
    await peer.close()


async def until(condition: Callable[[], bool], timeout: float) -> bool:
    """Whether ``condition`` came true within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])))
