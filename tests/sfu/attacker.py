"""Ways to throw bad input at a live relay leg, for the hardening tests.

A *malicious browser* holds a leg's real SRTP keys, so its garbage passes SRTP authentication and
reaches the relay's RTP/RTCP parsing; a *stranger* only knows the relay's UDP port, so its garbage
must die at the demultiplexer, STUN parser, DTLS or SRTP authentication.
"""

from __future__ import annotations

import re
import socket

from aiortc import RTCPeerConnection


class MaliciousBrowser:
    """Sends arbitrary plaintext RTP/RTCP, SRTP-protected with a connected peer's own keys."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        dtls = pc.getTransceivers()[0].receiver.transport
        pair = dtls.transport._connection._nominated[1]
        self._srtp = dtls._tx_srtp
        self._transport = pair.protocol.transport
        self._addr = pair.remote_addr
        self.sent = 0

    def rtp(self, packet: bytes) -> None:
        self._send(self._srtp.protect, packet)

    def rtcp(self, packet: bytes) -> None:
        self._send(self._srtp.protect_rtcp, packet)

    def _send(self, protect, packet: bytes) -> None:
        try:
            data = protect(packet)
        except Exception:
            return  # libsrtp refuses to protect some garbage (e.g. too short); nothing to send
        self._transport.sendto(data, self._addr)
        self.sent += 1


class Stranger:
    """Someone who knows only the relay leg's address."""

    def __init__(self, answer_sdp: str) -> None:
        match = re.search(r"^a=candidate:\S+ \d udp \d+ (\S+) (\d+) typ", answer_sdp, re.M)
        assert match, "no candidate in the answer"
        self._addr = (match.group(1), int(match.group(2)))
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.sent = 0

    def send(self, datagram: bytes) -> None:
        self._sock.sendto(datagram, self._addr)
        self.sent += 1

    def close(self) -> None:
        self._sock.close()
