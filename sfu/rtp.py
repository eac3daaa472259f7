"""Pure RTP helpers: telling datagrams apart, header lengths, RTX wrapping (no I/O, no state).

The relay's socket reader, the forwarder and the benchmarks all use these, so the byte ranges and
the header arithmetic are written once. The socket reader's loop is inline on purpose (a call per
datagram costs); it uses the byte-range constants below instead of ``demux``.
"""

from __future__ import annotations

import struct

# RFC 7983 section 7: the first byte of a datagram on a WebRTC 5-tuple says what it is.
STUN_FIRST_MAX = 3  # 0-3
DTLS_FIRST_MIN, DTLS_FIRST_MAX = 20, 63  # 20-63
SRTP_FIRST_MIN, SRTP_FIRST_MAX = 128, 191  # 128-191: RTP or RTCP (version 2)
# RFC 5761 section 4: on a muxed port the second byte of RTCP is its packet type, 192-223
# (FIR 192 ... XR 207, with room to spare); RTP puts marker + payload type there, and browsers
# never use payload types 64-95, which would collide.
RTCP_SECOND_MIN, RTCP_SECOND_MAX = 192, 223

# what ``demux`` returns
SRTP = 0
SRTCP = 1
HANDSHAKE = 2  # STUN or DTLS: aioice's and aiortc's business
DROP = 3  # anything else; aiortc's DTLS reader dies on an empty datagram, for one

FIXED_HEADER = struct.Struct("!BBHII")  # first byte, marker + payload type, seq, ts, SSRC
FIXED_HEADER_BYTES = 12
_EXTENSION_HEADER = struct.Struct("!HH")  # profile, length in 32-bit words
_SEQ = struct.Struct("!H")


def demux(data: bytes) -> int:
    """``SRTP``, ``SRTCP``, ``HANDSHAKE`` or ``DROP`` for one received datagram (RFC 7983)."""
    if len(data) > 1 and SRTP_FIRST_MIN <= data[0] <= SRTP_FIRST_MAX:
        return SRTCP if RTCP_SECOND_MIN <= data[1] <= RTCP_SECOND_MAX else SRTP
    if data and (data[0] <= STUN_FIRST_MAX or DTLS_FIRST_MIN <= data[0] <= DTLS_FIRST_MAX):
        return HANDSHAKE
    return DROP


def header_length(packet: bytes, first: int) -> int:
    """Bytes before the payload: fixed header, CSRCs and extension block; -1 if they run past
    the end. ``first`` is ``packet[0]``, which the caller has already read."""
    length = 12 + 4 * (first & 0x0F)  # FIXED_HEADER_BYTES, as a constant: runs per packet
    if first & 0x10:
        if length + 4 > len(packet):
            return -1
        # the length in 32-bit words, read by index: cheaper than a struct call per packet
        length += 4 + 4 * ((packet[length + 2] << 8) | packet[length + 3])
    return length if length <= len(packet) else -1


def payload_end(packet: bytes, first: int, header_end: int) -> int:
    """Where the payload ends: before the padding when the P bit is set; -1 if the padding
    count is 0 or reaches into the header (RFC 3550 5.1)."""
    end = len(packet)
    if first & 0x20:
        padding = packet[-1]
        if not 0 < padding <= end - header_end:
            return -1
        end -= padding
    return end


def extension_block(packet: bytes, first: int, header_end: int) -> tuple[int, int, bytes]:
    """``(offset, profile, block)`` of a packet's extension; call only when the X bit is set
    and ``header_end`` came from ``header_length``."""
    offset = FIXED_HEADER_BYTES + 4 * (first & 0x0F)
    profile = _EXTENSION_HEADER.unpack_from(packet, offset)[0]
    return offset, profile, packet[offset + 4 : header_end]


def with_extension_block(
    packet: bytes, first: int, header_end: int, profile: int, block: bytes
) -> bytearray:
    """The packet with its extension block replaced; an empty block removes it (X bit cleared)."""
    offset = FIXED_HEADER_BYTES + 4 * (first & 0x0F)
    out = bytearray(packet[:offset])
    if block:
        out += _EXTENSION_HEADER.pack(profile, len(block) // 4)
        out += block
    else:
        out[0] = first & ~0x10
    out += packet[header_end:]
    return out


def unwrap_rtx(packet: bytes, first: int, header_end: int, end: int) -> tuple[int, bytearray]:
    """RFC 4588 section 4: ``(original sequence number, original packet)`` from a retransmission
    whose payload is ``packet[header_end:end]`` (padding already excluded; at least 2 bytes).

    The original keeps the RTX packet's header (the caller renumbers it) without the padding
    bit, since the padding was the retransmission's, not the original's."""
    original = bytearray(packet[:header_end])
    original[0] = first & ~0x20
    original += packet[header_end + 2 : end]
    return _SEQ.unpack_from(packet, header_end)[0], original


def wrap_rtx(original: bytes, payload_type: int, seq: int, ssrc: int) -> bytearray:
    """RFC 4588 section 4: the retransmission of ``original`` on an RTX stream: the RTX stream's
    payload type, sequence number and SSRC, then the original sequence number before the
    payload. Call only with a well-formed packet (one the relay built or already checked)."""
    first, second, original_seq, ts, _ = FIXED_HEADER.unpack_from(original)
    end = header_length(original, first)
    rtx = bytearray(original[:end])
    FIXED_HEADER.pack_into(rtx, 0, first, (second & 0x80) | payload_type, seq, ts, ssrc)
    rtx += _SEQ.pack(original_seq)
    rtx += original[end:]
    return rtx
