"""sfu.rtp: demultiplexing by first byte (RFC 7983), header lengths, RTX wrap and unwrap."""

from __future__ import annotations

import struct

import pytest

from sfu import rtp
from sfu.header_extensions import build_block


def rtp_packet(
    seq: int = 7,
    payload: bytes = b"payload",
    csrcs: int = 0,
    extensions: list[tuple[int, bytes]] | None = None,
    padding: int = 0,
) -> bytes:
    first = 0x80 | csrcs | (0x10 if extensions is not None else 0) | (0x20 if padding else 0)
    packet = struct.pack("!BBHII", first, 0x80 | 96, seq, 1234, 0xABCD) + bytes(4 * csrcs)
    if extensions is not None:
        profile, block = build_block(extensions)
        packet += struct.pack("!HH", profile, len(block) // 4) + block
    packet += payload
    if padding:
        packet += bytes(padding - 1) + bytes([padding])
    return packet


# --- demux ----------------------------------------------------------------------------------


@pytest.mark.parametrize("first", [0, 1, 3])
def test_stun_first_bytes_go_to_the_handshake(first):
    assert rtp.demux(bytes([first]) + bytes(19)) == rtp.HANDSHAKE


@pytest.mark.parametrize("first", [20, 22, 63])
def test_dtls_first_bytes_go_to_the_handshake(first):
    assert rtp.demux(bytes([first]) + bytes(12)) == rtp.HANDSHAKE


@pytest.mark.parametrize("first", [128, 0x90, 191])
def test_version_2_with_a_media_payload_type_is_srtp(first):
    assert rtp.demux(bytes([first, 96]) + bytes(10)) == rtp.SRTP


@pytest.mark.parametrize("second", [192, 200, 206, 223])
def test_version_2_with_an_rtcp_packet_type_is_srtcp(second):
    assert rtp.demux(bytes([0x80, second]) + bytes(6)) == rtp.SRTCP


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80", bytes([4]), bytes([19]), bytes([64]), bytes([127]), bytes([192]), b"\xff\x00"],
    ids=["empty", "one-byte-rtp", "4", "19", "64", "127", "192", "255"],
)
def test_everything_else_is_dropped(data):
    assert rtp.demux(data) == rtp.DROP


def test_byte_range_constants_agree_with_demux_over_every_first_byte():
    """The socket reader's inline test uses the constants; they must mean what demux means."""
    for first in range(256):
        inline_srtp = rtp.SRTP_FIRST_MIN <= first <= rtp.SRTP_FIRST_MAX
        assert (rtp.demux(bytes([first, 96])) in (rtp.SRTP, rtp.SRTCP)) == inline_srtp


# --- header length and padding --------------------------------------------------------------


def test_header_length_of_a_plain_packet_is_the_fixed_header():
    packet = rtp_packet()
    assert rtp.header_length(packet, packet[0]) == 12


def test_header_length_counts_csrcs_and_the_extension_block():
    packet = rtp_packet(csrcs=2, extensions=[(1, b"\x01\x02\x03")])
    assert rtp.header_length(packet, packet[0]) == 12 + 8 + 4 + 4


def test_header_length_is_minus_one_when_the_csrcs_run_past_the_end():
    packet = rtp_packet(csrcs=3, payload=b"")[:20]
    assert rtp.header_length(packet, packet[0]) == -1


def test_header_length_is_minus_one_when_the_extension_header_is_cut_off():
    packet = rtp_packet(extensions=[(1, b"\x01")])[:14]
    assert rtp.header_length(packet, packet[0]) == -1


def test_header_length_is_minus_one_when_the_extension_runs_past_the_end():
    packet = rtp_packet(extensions=[(1, b"\x01\x02\x03")], payload=b"")[:-2]
    assert rtp.header_length(packet, packet[0]) == -1


def test_payload_ends_before_the_padding():
    packet = rtp_packet(payload=b"abc", padding=5)
    assert packet[12 : rtp.payload_end(packet, packet[0], 12)] == b"abc"


def test_payload_end_is_minus_one_for_a_zero_padding_count():
    packet = bytearray(rtp_packet(padding=4))
    packet[-1] = 0
    assert rtp.payload_end(bytes(packet), packet[0], 12) == -1


def test_payload_end_is_minus_one_when_the_padding_reaches_into_the_header():
    packet = bytearray(rtp_packet(payload=b"", padding=4))
    packet[-1] = 5
    assert rtp.payload_end(bytes(packet), packet[0], 12) == -1


# --- extension block ------------------------------------------------------------------------


def test_extension_block_is_found_after_the_csrcs():
    packet = rtp_packet(csrcs=1, extensions=[(3, b"\x07\x08")])
    end = rtp.header_length(packet, packet[0])
    assert rtp.extension_block(packet, packet[0], end) == (16, 0xBEDE, b"\x31\x07\x08\x00")


def test_replacing_the_extension_block_keeps_the_payload():
    packet = rtp_packet(extensions=[(3, b"\x07\x08")], payload=b"data")
    end = rtp.header_length(packet, packet[0])
    out = rtp.with_extension_block(packet, packet[0], end, 0xBEDE, b"\x50\x01\x00\x00")
    assert (bytes(out[12:20]), bytes(out[20:])) == (b"\xbe\xde\x00\x01\x50\x01\x00\x00", b"data")


def test_an_empty_extension_block_removes_it_and_clears_the_x_bit():
    packet = rtp_packet(extensions=[(3, b"\x07\x08")], payload=b"data")
    end = rtp.header_length(packet, packet[0])
    out = rtp.with_extension_block(packet, packet[0], end, 0xBEDE, b"")
    assert (out[0] & 0x10, bytes(out[12:])) == (0, b"data")


# --- RTX (RFC 4588) -------------------------------------------------------------------------


def test_wrapping_puts_the_original_sequence_number_before_the_payload():
    original = rtp_packet(seq=4242, payload=b"frame")
    wrapped = rtp.wrap_rtx(original, payload_type=97, seq=9, ssrc=0x1234)
    assert bytes(wrapped[12:]) == struct.pack("!H", 4242) + b"frame"


def test_wrapping_takes_the_rtx_streams_numbering_and_keeps_marker_and_timestamp():
    original = rtp_packet(seq=4242)
    wrapped = rtp.wrap_rtx(original, payload_type=97, seq=9, ssrc=0x1234)
    assert struct.unpack_from("!BBHII", wrapped) == (0x80, 0x80 | 97, 9, 1234, 0x1234)


def test_wrapping_keeps_the_extension_block_in_the_header():
    original = rtp_packet(extensions=[(3, b"\x07\x08")], payload=b"frame")
    wrapped = rtp.wrap_rtx(original, payload_type=97, seq=9, ssrc=0x1234)
    assert (bytes(wrapped[12:20]), bytes(wrapped[22:])) == (original[12:20], b"frame")


def test_unwrapping_a_wrapped_packet_gives_back_the_original():
    original = rtp_packet(seq=4242, extensions=[(3, b"\x07\x08")], payload=b"frame")
    wrapped = bytes(rtp.wrap_rtx(original, payload_type=97, seq=9, ssrc=0x1234))
    end = rtp.header_length(wrapped, wrapped[0])
    osn, unwrapped = rtp.unwrap_rtx(wrapped, wrapped[0], end, len(wrapped))
    struct.pack_into("!BBHII", unwrapped, 0, unwrapped[0], 0x80 | 96, osn, 1234, 0xABCD)
    assert bytes(unwrapped) == original


def test_unwrapping_drops_the_retransmissions_padding():
    wrapped = rtp_packet(payload=struct.pack("!H", 77) + b"frame", padding=3)
    end = rtp.payload_end(wrapped, wrapped[0], 12)
    osn, original = rtp.unwrap_rtx(wrapped, wrapped[0], 12, end)
    assert (osn, original[0] & 0x20, bytes(original[12:])) == (77, 0, b"frame")
