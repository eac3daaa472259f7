"""The RTCP the relay reads, rewrites and writes (RFC 3550, 4585, 5104, REMB, transport-cc).

Only what the relay needs: walking a compound packet safely, reading feedback (NACK, PLI, FIR,
REMB, transport-cc), translating sender reports, and building PLI, NACK and receiver reports.
Everything that reads untrusted input validates lengths first and returns nothing on garbage.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

SR = 200
RR = 201
SDES = 202
BYE = 203
APP = 204
RTPFB = 205
PSFB = 206

RTPFB_NACK = 1
RTPFB_TWCC = 15
PSFB_PLI = 1
PSFB_FIR = 4
PSFB_AFB = 15  # application layer feedback; REMB lives here

_HEADER = struct.Struct("!BBH")
_FEEDBACK = struct.Struct("!BBHII")  # header + sender ssrc + media ssrc
_SR_INFO = struct.Struct("!IIIIII")  # ssrc, ntp msw, ntp lsw, rtp ts, packets, octets
_REPORT_BLOCK = struct.Struct("!IBBHIIII")  # ssrc, fraction, lost(24), ext seq, jitter, lsr, dlsr


@dataclass(frozen=True, slots=True)
class RtcpView:
    """One packet inside a compound RTCP datagram: its type, count/format field and bytes."""

    packet_type: int
    count: int
    data: bytes


def iter_packets(datagram: bytes) -> Iterator[RtcpView]:
    """Walk a compound packet; stops at the first packet whose length field lies."""
    pos = 0
    end = len(datagram)
    while pos + 4 <= end:
        first, packet_type, length_words = _HEADER.unpack_from(datagram, pos)
        if first >> 6 != 2:
            return
        size = (length_words + 1) * 4
        if pos + size > end:
            return
        yield RtcpView(packet_type, first & 0x1F, datagram[pos : pos + size])
        pos += size


def _header(count: int, packet_type: int, size: int) -> bytes:
    return _HEADER.pack(0x80 | count, packet_type, size // 4 - 1)


# --- feedback -------------------------------------------------------------------------------


def feedback_ssrcs(packet: bytes) -> tuple[int, int] | None:
    """(sender ssrc, media ssrc) of an RTPFB/PSFB packet."""
    if len(packet) < 12:
        return None
    _, _, _, sender, media = _FEEDBACK.unpack_from(packet, 0)
    return sender, media


def nack_sequence_numbers(packet: bytes) -> list[int]:
    """Sequence numbers a generic NACK asks for (RFC 4585 6.2.1)."""
    seqs: list[int] = []
    for pos in range(12, len(packet) - 3, 4):
        pid, blp = struct.unpack_from("!HH", packet, pos)
        seqs.append(pid)
        for bit in range(16):
            if blp & (1 << bit):
                seqs.append((pid + bit + 1) & 0xFFFF)
    return seqs


def fir_media_ssrcs(packet: bytes) -> list[int]:
    """Media SSRCs named in a FIR's FCI entries (RFC 5104 4.3.1)."""
    return [struct.unpack_from("!I", packet, pos)[0] for pos in range(12, len(packet) - 7, 8)]


def remb_ssrcs(packet: bytes) -> tuple[int, list[int]] | None:
    """(bitrate bps, ssrcs) of a REMB packet, or None if it is not a well-formed REMB."""
    if len(packet) < 20 or packet[12:16] != b"REMB":
        return None
    count = packet[16]
    exponent = packet[17] >> 2
    mantissa = ((packet[17] & 0x03) << 16) | (packet[18] << 8) | packet[19]
    if len(packet) < 20 + 4 * count:
        return None
    ssrcs = [struct.unpack_from("!I", packet, 20 + 4 * i)[0] for i in range(count)]
    return mantissa << exponent, ssrcs


def build_remb(sender_ssrc: int, bitrate: int, ssrcs: list[int]) -> bytes:
    exponent = 0
    mantissa = bitrate
    while mantissa > 0x3FFFF:
        mantissa >>= 1
        exponent += 1
    fci = b"REMB" + bytes(
        [len(ssrcs), (exponent << 2) | (mantissa >> 16), (mantissa >> 8) & 0xFF, mantissa & 0xFF]
    )
    fci += b"".join(struct.pack("!I", s) for s in ssrcs)
    size = 12 + len(fci)
    return _header(PSFB_AFB, PSFB, size) + struct.pack("!II", sender_ssrc, 0) + fci


def with_feedback_ssrcs(packet: bytes, sender_ssrc: int, media_ssrc: int) -> bytes:
    """The same feedback packet with its two SSRC fields replaced (transport-cc, etc.)."""
    return packet[:4] + struct.pack("!II", sender_ssrc, media_ssrc) + packet[12:]


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    return _FEEDBACK.pack(0x80 | PSFB_PLI, PSFB, 2, sender_ssrc, media_ssrc)


def build_nack(sender_ssrc: int, media_ssrc: int, seqs: Iterable[int]) -> bytes:
    """A generic NACK covering ``seqs``, packed into as few (pid, blp) pairs as possible."""
    fci = bytearray()
    pending = _in_wrap_order(set(seqs))
    while pending:
        pid = pending.pop(0)
        blp = 0
        rest = []
        for seq in pending:
            delta = (seq - pid) & 0xFFFF
            if 1 <= delta <= 16:
                blp |= 1 << (delta - 1)
            else:
                rest.append(seq)
        pending = rest
        fci += struct.pack("!HH", pid, blp)
    size = 12 + len(fci)
    return _header(RTPFB_NACK, RTPFB, size) + struct.pack("!II", sender_ssrc, media_ssrc) + fci


def _in_wrap_order(seqs: set[int]) -> list[int]:
    """Sequence numbers in the order they were sent: start after the widest gap, so a run
    across 65535 -> 0 stays together."""
    ordered = sorted(seqs)
    if len(ordered) < 2:
        return ordered
    gaps = [(ordered[(i + 1) % len(ordered)] - s) & 0xFFFF for i, s in enumerate(ordered)]
    start = (max(range(len(ordered)), key=gaps.__getitem__) + 1) % len(ordered)
    return ordered[start:] + ordered[:start]


# --- reports --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SenderInfo:
    ssrc: int
    ntp_msw: int
    ntp_lsw: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int

    @property
    def ntp_middle(self) -> int:
        """The middle 32 bits of the NTP time: what receivers echo back as LSR."""
        return ((self.ntp_msw & 0xFFFF) << 16) | (self.ntp_lsw >> 16)


def sender_info(packet: bytes) -> SenderInfo | None:
    if len(packet) < 28:
        return None
    return SenderInfo(*_SR_INFO.unpack_from(packet, 4))


def build_sender_report(info: SenderInfo) -> bytes:
    """A sender report without report blocks (the relay reports reception in its own RRs)."""
    return _header(0, SR, 28) + _SR_INFO.pack(
        info.ssrc,
        info.ntp_msw,
        info.ntp_lsw,
        info.rtp_timestamp,
        info.packet_count,
        info.octet_count,
    )


@dataclass(frozen=True, slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int  # 0..255, fraction of 256
    cumulative_lost: int
    highest_sequence: int  # extended
    jitter: int
    last_sr: int
    delay_since_last_sr: int  # 1/65536 s


def report_blocks(packet: bytes, packet_type: int, count: int) -> list[ReportBlock]:
    """Report blocks of an SR or RR."""
    start = 28 if packet_type == SR else 8
    blocks = []
    for i in range(count):
        pos = start + 24 * i
        if pos + 24 > len(packet):
            break
        ssrc, fraction, lost_hi, lost_lo, ext_seq, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(
            packet, pos
        )
        lost = (lost_hi << 16) | lost_lo
        if lost & 0x800000:
            lost -= 1 << 24
        blocks.append(ReportBlock(ssrc, fraction, lost, ext_seq, jitter, lsr, dlsr))
    return blocks


def build_receiver_report(sender_ssrc: int, blocks: list[ReportBlock]) -> bytes:
    body = bytearray(struct.pack("!I", sender_ssrc))
    for b in blocks[:31]:
        lost = max(min(b.cumulative_lost, 0x7FFFFF), -0x800000) & 0xFFFFFF
        body += _REPORT_BLOCK.pack(
            b.ssrc,
            b.fraction_lost,
            lost >> 16,
            lost & 0xFFFF,
            b.highest_sequence & 0xFFFFFFFF,
            b.jitter & 0xFFFFFFFF,
            b.last_sr,
            b.delay_since_last_sr,
        )
    size = 4 + len(body)
    return _header(min(len(blocks), 31), RR, size) + bytes(body)
