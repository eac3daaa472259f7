"""Hypothesis strategies for RTP and RTCP that lie about themselves.

Each strategy builds a packet whose header is mostly plausible (so it gets past the first checks)
but whose counts and lengths disagree with its bytes: CSRC counts past the end, extension lengths
past the end, padding longer than the packet, RTCP length fields and FCI counts that lie.
"""

from __future__ import annotations

import struct

from hypothesis import strategies as st

PAYLOAD_TYPES = st.one_of(st.sampled_from([96, 97, 98, 111, 0]), st.integers(0, 127))
SSRCS = st.one_of(st.sampled_from([1, 2, 0xDEADBEEF]), st.integers(0, 2**32 - 1))


@st.composite
def rtp_packets(draw) -> bytes:
    version = draw(st.sampled_from([2, 2, 2, 0, 1, 3]))
    padding = draw(st.booleans())
    extension = draw(st.booleans())
    csrc_count = draw(st.integers(0, 15))
    first = (version << 6) | (padding << 5) | (extension << 4) | csrc_count
    second = (draw(st.booleans()) << 7) | draw(PAYLOAD_TYPES)
    header = struct.pack(
        "!BBHII",
        first,
        second,
        draw(st.integers(0, 65535)),
        draw(st.integers(0, 2**32 - 1)),
        draw(SSRCS),
    )
    csrcs = draw(st.binary(max_size=4 * csrc_count + 4))  # sometimes fewer than claimed
    body = b""
    if extension:
        profile = draw(st.sampled_from([0xBEDE, 0x1000, 0x1001, 0xFFFF, 0]))
        words = draw(st.integers(0, 65535))
        ext = draw(st.binary(max_size=64))
        body += struct.pack("!HH", profile, words) + ext
    body += draw(st.binary(max_size=1200))
    if padding:
        body += bytes([draw(st.integers(0, 255))])  # the pad count, possibly past the start
    return header + csrcs + body


def _rtcp(count: int, packet_type: int, body: bytes, length_words: int | None = None) -> bytes:
    words = len(body) // 4 + 1 if length_words is None else length_words
    return struct.pack("!BBH", 0x80 | (count & 0x1F), packet_type, words & 0xFFFF) + body


@st.composite
def rtcp_single(draw) -> bytes:
    kind = draw(
        st.sampled_from(
            ["sr", "rr", "sdes", "bye", "app", "nack", "twcc", "pli", "fir", "remb", "raw"]
        )
    )
    ssrc = struct.pack("!I", draw(SSRCS))
    media = struct.pack("!I", draw(SSRCS))
    lie = draw(st.one_of(st.none(), st.integers(0, 300)))
    if kind == "sr":
        body = ssrc + draw(st.binary(min_size=0, max_size=20 + 24 * 3))
        return _rtcp(draw(st.integers(0, 31)), 200, _pad(body), lie)
    if kind == "rr":
        body = ssrc + draw(st.binary(max_size=24 * 3))
        return _rtcp(draw(st.integers(0, 31)), 201, _pad(body), lie)
    if kind == "sdes":
        return _rtcp(draw(st.integers(0, 31)), 202, _pad(draw(st.binary(max_size=80))), lie)
    if kind == "bye":
        reason_length = draw(st.integers(0, 255))  # may claim more than follows
        body = ssrc + bytes([reason_length]) + draw(st.binary(max_size=20))
        return _rtcp(draw(st.integers(0, 31)), 203, _pad(body), lie)
    if kind == "app":
        return _rtcp(
            draw(st.integers(0, 31)), 204, _pad(ssrc + b"NAME" + draw(st.binary(max_size=40))), lie
        )
    if kind == "nack":
        fci = b"".join(
            struct.pack("!HH", draw(st.integers(0, 65535)), draw(st.integers(0, 65535)))
            for _ in range(draw(st.integers(0, 40)))
        )
        return _rtcp(1, 205, ssrc + media + fci, lie)
    if kind == "twcc":
        status_count = draw(st.integers(0, 65535))  # a huge count over a short body
        fci = struct.pack("!HHI", draw(st.integers(0, 65535)), status_count, 0) + draw(
            st.binary(max_size=40)
        )
        return _rtcp(15, 205, _pad(ssrc + media + fci), lie)
    if kind == "pli":
        return _rtcp(1, 206, ssrc + media, lie)
    if kind == "fir":
        fci = draw(st.binary(max_size=8 * 5))
        return _rtcp(4, 206, _pad(ssrc + media + fci), lie)
    if kind == "remb":
        count = draw(st.integers(0, 255))
        fci = (
            b"REMB"
            + bytes([count])
            + draw(st.binary(min_size=3, max_size=3))
            + draw(st.binary(max_size=16))
        )
        return _rtcp(15, 206, _pad(ssrc + struct.pack("!I", 0) + fci), lie)
    return draw(st.binary(min_size=4, max_size=120))


@st.composite
def rtcp_compounds(draw) -> bytes:
    return b"".join(draw(st.lists(rtcp_single(), min_size=1, max_size=4)))


def _pad(body: bytes) -> bytes:
    return body + b"\x00" * (-len(body) % 4)


# Datagrams a stranger might send: STUN-ish, DTLS-ish, RTP-ish (unauthenticated) and noise.
@st.composite
def stranger_datagrams(draw) -> bytes:
    kind = draw(st.sampled_from(["stun", "dtls", "srtp", "noise"]))
    if kind == "stun":
        length = draw(st.integers(0, 65535))
        head = struct.pack(
            "!HHI", draw(st.sampled_from([0x0001, 0x0101, 0x0111, 0x0017])), length, 0x2112A442
        )
        return head + draw(st.binary(min_size=12, max_size=12)) + draw(st.binary(max_size=200))
    if kind == "dtls":
        return bytes([draw(st.integers(20, 63)), 0xFE, 0xFD]) + draw(st.binary(max_size=300))
    if kind == "srtp":
        return bytes([0x80, draw(st.integers(0, 255))]) + draw(st.binary(max_size=300))
    return draw(st.binary(min_size=0, max_size=1500))
