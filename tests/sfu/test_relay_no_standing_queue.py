"""No standing queue in the relay: a packet that waited past ``MAX_PACKET_AGE`` in a leg's socket
is dropped and counted, never forwarded late; STUN waiting in the same queue is still answered
(ICE consent must not starve behind media), also when more than the age bound's worth of packets
waits, so the receive buffer holds more than that (~0.5 s) and the age is checked when reading.

The peers are aiortc connections used for ICE and DTLS only; then the test takes their SRTP
sessions and sockets and sends RTP itself, so it decides exactly what waits in the relay's socket.
A stall of the relay is made the way overload makes it: the event loop (which the relay shares
with the test) is blocked, so the relay cannot read while packets keep arriving.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct
import time
from dataclasses import dataclass

from aioice import stun
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from sfu import aiortc_glue, wire
from sfu.rtp import SRTP_FIRST_MAX, SRTP_FIRST_MIN, header_length
from tests.sfu.media_peers import until

STALL_SECONDS = 0.3  # longer than MAX_PACKET_AGE: everything queued before it is stale


@dataclass
class RawPeer:
    """An aiortc connection whose media path the test took over."""

    pc: RTCPeerConnection
    video_pt: int
    video_ssrc: int
    sock: socket.socket | None = None
    remote_addr: tuple[str, int] = ("", 0)
    tx: object = None
    rx: object = None
    connection: object = None  # aioice's Connection: its credentials sign our STUN requests
    seq: int = 0

    def rtp(self, tag: bytes, size: int = 200) -> bytes:
        self.seq += 1
        header = struct.pack(
            "!BBHII", 0x80, self.video_pt, self.seq, self.seq * 450, self.video_ssrc
        )
        return self.tx.protect(header + tag + bytes(size))  # type: ignore[attr-defined]


async def make_peer() -> tuple[RawPeer, str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="sendrecv")
    pc.addTransceiver("video", direction="sendrecv")
    aiortc_glue.guard_peer_connection(pc)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    video = sdp[sdp.index("m=video") :]
    pt = int(re.search(r"(?m)^a=rtpmap:(\d+) VP8/", video).group(1))
    ssrc = int(re.search(r"(?m)^a=ssrc:(\d+) ", video).group(1))
    return RawPeer(pc=pc, video_pt=pt, video_ssrc=ssrc), sdp


async def take_over(peer: RawPeer) -> None:
    for transceiver in peer.pc.getTransceivers():
        await transceiver.sender.stop()
        await transceiver.receiver.stop()
    dtls = peer.pc.getTransceivers()[0].receiver.transport
    peer.tx, peer.rx = dtls._tx_srtp, dtls._rx_srtp
    peer.connection = dtls.transport._connection
    pair = peer.connection._nominated[1]
    peer.remote_addr = pair.remote_addr
    fd = pair.protocol.transport.get_extra_info("socket").fileno()
    asyncio.get_running_loop()._remove_reader(fd)  # the test reads this socket itself
    peer.sock = socket.socket(fileno=os.dup(fd))
    peer.sock.setblocking(False)


async def connected_pair(relay) -> tuple[object, RawPeer, RawPeer]:
    room = relay.create_room()
    a, offer_a = await make_peer()
    b, offer_b = await make_peer()
    for seat, peer, offer in (("a", a, offer_a), ("b", b, offer_b)):
        answer = await room.connect(seat, offer)
        await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await until(
        lambda: (
            room.leg_state("a") == room.leg_state("b") == "connected"
            and a.pc.connectionState == b.pc.connectionState == "connected"
        ),
        "both legs and both peers connected",
    )
    await take_over(a)
    await take_over(b)
    return room, a, b


def read_tags(peer: RawPeer, tags: list[bytes], stun_responses: list[bytes]) -> None:
    """Everything queued at a peer's socket: RTP payload tags, and STUN responses' ids."""
    while True:
        try:
            data = peer.sock.recv(2048)
        except BlockingIOError:
            return
        if data and SRTP_FIRST_MIN <= data[0] <= SRTP_FIRST_MAX and not 192 <= data[1] <= 223:
            plain = peer.rx.unprotect(data)  # type: ignore[attr-defined]
            start = header_length(plain, plain[0])
            tags.append(bytes(plain[start : start + 8]))
        elif data and data[0] <= 3:
            stun_responses.append(stun.parse_message(data).transaction_id)


def binding_request(peer: RawPeer) -> stun.Message:
    """A consent check as a browser sends it (RFC 7675): signed with the relay's password."""
    connection = peer.connection
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    request.attributes["USERNAME"] = f"{connection.remote_username}:{connection.local_username}"
    request.attributes["PRIORITY"] = 1
    request.attributes["ICE-CONTROLLING"] = connection._tie_breaker
    request.add_message_integrity(connection.remote_password.encode("utf8"))
    request.add_fingerprint()
    return request


def relay_wire_of(room, peer: RawPeer) -> wire.Wire:
    local = peer.sock.getsockname()[:2]
    for forwarder in room.forwarders():
        if tuple(forwarder.source.wire.remote_addr) == tuple(local):
            return forwarder.source.wire
    raise AssertionError("no relay leg reads from this peer")


async def test_rtp_that_waited_past_the_age_bound_is_dropped_and_counted_not_forwarded(relay):
    room, a, b = await connected_pair(relay)
    try:
        for n in range(40):
            a.sock.sendto(a.rtp(b"old%05d" % n), a.remote_addr)
        time.sleep(STALL_SECONDS)  # the relay's loop is blocked: overload, as the relay sees it
        received: list[bytes] = []
        stun_seen: list[bytes] = []
        n = 0

        def fresh_arrived() -> bool:
            nonlocal n
            n += 1
            a.sock.sendto(a.rtp(b"new%05d" % n), a.remote_addr)
            read_tags(b, received, stun_seen)
            return any(tag.startswith(b"new") for tag in received)

        await until(fresh_arrived, "a packet sent after the stall reached the other peer")
        assert not [t for t in received if t.startswith(b"old")], "stale packets were forwarded"
        assert relay_wire_of(room, a).dropped_late >= 40
    finally:
        await a.pc.close()
        await b.pc.close()


async def test_a_consent_check_queued_behind_stale_media_is_still_answered(relay):
    room, a, b = await connected_pair(relay)
    try:
        for n in range(40):
            a.sock.sendto(a.rtp(b"old%05d" % n), a.remote_addr)
        request = binding_request(a)
        a.sock.sendto(bytes(request), a.remote_addr)
        for n in range(40, 80):
            a.sock.sendto(a.rtp(b"old%05d" % n), a.remote_addr)
        time.sleep(STALL_SECONDS)
        received: list[bytes] = []
        answered: list[bytes] = []
        await until(
            lambda: read_tags(a, received, answered) or request.transaction_id in answered,
            "the relay answered the consent check that waited among stale packets",
        )
        assert relay_wire_of(room, a).dropped_late >= 80
        assert room.leg_state("a") == "connected"
    finally:
        await a.pc.close()
        await b.pc.close()


async def test_a_consent_check_behind_more_than_the_age_bound_of_media_is_still_answered(relay):
    # Overload as an outside load test makes it: the relay falls behind by more packets than
    # MAX_PACKET_AGE holds at the leg's rate. A receive buffer sized to the age bound (100
    # packets) made the kernel drop whatever came next, the consent check included, and the
    # generator's ICE agent closed the call after six such checks (issue #17). The age bound is
    # kept when reading; the buffer must not be what drops the check.
    room, a, b = await connected_pair(relay)
    try:
        for n in range(300):  # ~0.6 s of a leg's camera at 500 packets/s, 1100-byte payloads
            a.sock.sendto(a.rtp(b"old%05d" % n, 1100), a.remote_addr)
        request = binding_request(a)
        a.sock.sendto(bytes(request), a.remote_addr)
        time.sleep(STALL_SECONDS)
        received: list[bytes] = []
        answered: list[bytes] = []
        await until(
            lambda: read_tags(a, received, answered) or request.transaction_id in answered,
            "the relay answered the consent check that came after 300 stale packets",
        )
        assert relay_wire_of(room, a).dropped_late >= 250
        assert room.leg_state("a") == "connected"
    finally:
        await a.pc.close()
        await b.pc.close()


def test_a_legs_receive_buffer_holds_about_half_a_second_of_its_expected_traffic():
    # asked of the kernel as the gatherer asks; the kernel doubles it for its bookkeeping and
    # caps the request at net.core.rmem_max (the relay logs that once, receive_buffer_capped)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wire.RECEIVE_BUFFER_BYTES)
        sock.setblocking(False)
        for _ in range(2000):  # 2 s of a leg's expected 1000 packets/s, nobody reading
            sink.sendto(bytes(1200), sock.getsockname())
        queued = 0
        while True:
            try:
                sock.recv(2048)
            except BlockingIOError:
                break
            queued += 1
        granted = min(wire.RECEIVE_BUFFER_BYTES, rmem_max())
        expected = wire.RECEIVE_BUFFER_SECONDS * wire.LEG_PACKETS_PER_SECOND
        expected *= granted / wire.RECEIVE_BUFFER_BYTES
        assert expected / 2 <= queued <= expected * 2, (queued, granted)
    finally:
        sock.close()
        sink.close()


def rmem_max() -> int:
    with open("/proc/sys/net/core/rmem_max", encoding="ascii") as f:
        return int(f.read())
