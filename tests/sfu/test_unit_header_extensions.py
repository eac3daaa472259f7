"""RFC 8285 header-extension blocks and their translation between two legs' id numbering."""

from __future__ import annotations

import pytest

from sfu.header_extensions import (
    MID_URI,
    ONE_BYTE_PROFILE,
    TWO_BYTE_PROFILE,
    ExtensionRewriter,
    build_block,
    parse_elements,
)

ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TRANSPORT_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


def one_byte(*elements: tuple[int, bytes]) -> bytes:
    """An unpadded one-byte-form block: id in the high nibble, length - 1 in the low one."""
    return b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in elements)


def two_byte(*elements: tuple[int, bytes]) -> bytes:
    """An unpadded two-byte-form block: one byte id, one byte length."""
    return b"".join(bytes([i, len(v)]) + v for i, v in elements)


# --- parse_elements, one-byte form ----------------------------------------------------------


def test_one_byte_block_splits_into_id_value_elements():
    block = one_byte((1, b"\x11\x22\x33"), (3, b"\x44"))
    assert parse_elements(ONE_BYTE_PROFILE, block) == [(1, b"\x11\x22\x33"), (3, b"\x44")]


def test_one_byte_length_nibble_means_length_minus_one():
    assert parse_elements(ONE_BYTE_PROFILE, bytes([0x2F]) + bytes(range(16))) == [
        (2, bytes(range(16)))
    ]


def test_one_byte_padding_between_and_after_elements_is_skipped():
    block = one_byte((1, b"\xaa")) + b"\x00\x00" + one_byte((2, b"\xbb")) + b"\x00\x00\x00"
    assert parse_elements(ONE_BYTE_PROFILE, block) == [(1, b"\xaa"), (2, b"\xbb")]


def test_one_byte_id_15_stops_parsing_and_keeps_earlier_elements():
    block = one_byte((1, b"\xaa")) + bytes([0xF0]) + one_byte((2, b"\xbb"))
    assert parse_elements(ONE_BYTE_PROFILE, block) == [(1, b"\xaa")]


def test_one_byte_element_longer_than_the_block_is_malformed():
    assert parse_elements(ONE_BYTE_PROFILE, bytes([0x13, 0xAA, 0xBB])) is None


def test_empty_block_has_no_elements():
    assert parse_elements(ONE_BYTE_PROFILE, b"") == []


# --- parse_elements, two-byte form ----------------------------------------------------------


def test_two_byte_block_splits_into_id_value_elements():
    block = two_byte((1, b"\x11\x22"), (200, b"x" * 20))
    assert parse_elements(TWO_BYTE_PROFILE, block) == [(1, b"\x11\x22"), (200, b"x" * 20)]


def test_two_byte_form_allows_empty_values():
    assert parse_elements(TWO_BYTE_PROFILE, two_byte((5, b""), (6, b"\x01"))) == [
        (5, b""),
        (6, b"\x01"),
    ]


@pytest.mark.parametrize("appbits", [0x0, 0x7, 0xF])
def test_two_byte_profile_is_recognised_whatever_its_appbits(appbits):
    assert parse_elements(0x1000 | appbits, two_byte((1, b"\xaa"))) == [(1, b"\xaa")]


def test_two_byte_padding_is_skipped():
    block = b"\x00" + two_byte((1, b"\xaa")) + b"\x00\x00"
    assert parse_elements(TWO_BYTE_PROFILE, block) == [(1, b"\xaa")]


def test_two_byte_element_cut_after_its_id_is_malformed():
    assert parse_elements(TWO_BYTE_PROFILE, two_byte((1, b"\xaa")) + b"\x02") is None


def test_two_byte_element_longer_than_the_block_is_malformed():
    assert parse_elements(TWO_BYTE_PROFILE, bytes([1, 5, 0xAA, 0xBB])) is None


def test_unknown_profile_is_malformed():
    assert parse_elements(0xABCD, one_byte((1, b"\xaa"))) is None


# --- build_block ----------------------------------------------------------------------------


def test_elements_that_fit_are_built_in_one_byte_form():
    assert build_block([(1, b"\x11\x22\x33"), (3, b"\x44")]) == (
        ONE_BYTE_PROFILE,
        one_byte((1, b"\x11\x22\x33"), (3, b"\x44")) + b"\x00\x00",
    )


def test_built_block_is_padded_to_a_multiple_of_four_bytes():
    for size in range(1, 9):
        _, block = build_block([(1, b"v" * size)])
        assert len(block) % 4 == 0, size


def test_block_already_32_bit_aligned_gets_no_padding():
    assert build_block([(1, b"abc")]) == (ONE_BYTE_PROFILE, one_byte((1, b"abc")))


def test_16_byte_value_and_id_14_still_fit_the_one_byte_form():
    assert build_block([(14, b"v" * 16)]) == (
        ONE_BYTE_PROFILE,
        one_byte((14, b"v" * 16)) + bytes(3),
    )


def test_value_longer_than_16_bytes_forces_two_byte_form():
    assert build_block([(1, b"v" * 17)]) == (TWO_BYTE_PROFILE, two_byte((1, b"v" * 17)) + b"\x00")


def test_id_above_14_forces_two_byte_form():
    assert build_block([(15, b"ab")]) == (TWO_BYTE_PROFILE, two_byte((15, b"ab")))


def test_empty_value_forces_two_byte_form():
    profile, _ = build_block([(2, b"")])
    assert profile == TWO_BYTE_PROFILE


@pytest.mark.parametrize(
    "elements",
    [
        [(1, b"\x01"), (14, b"x" * 16)],
        [(1, b"\x01"), (20, b"y" * 3), (2, b"z" * 40)],
    ],
)
def test_built_block_parses_back_to_its_elements(elements):
    assert parse_elements(*build_block(elements)) == elements


# --- ExtensionRewriter ----------------------------------------------------------------------


def test_rewriter_is_identity_when_ids_and_mid_agree():
    ids = {MID_URI: 4, ABS_SEND_TIME: 2}
    assert ExtensionRewriter(ids, dict(ids), "0", "0").identity


def test_rewriter_is_identity_when_the_sink_negotiated_extra_extensions():
    assert ExtensionRewriter(
        {ABS_SEND_TIME: 2}, {ABS_SEND_TIME: 2, AUDIO_LEVEL: 1}, "0", "1"
    ).identity


def test_rewriter_is_not_identity_when_an_id_differs():
    assert not ExtensionRewriter({ABS_SEND_TIME: 2}, {ABS_SEND_TIME: 3}, "0", "0").identity


def test_rewriter_is_not_identity_when_the_sink_lacks_an_extension():
    assert not ExtensionRewriter(
        {ABS_SEND_TIME: 2, AUDIO_LEVEL: 1}, {ABS_SEND_TIME: 2}, None, None
    ).identity


def test_rewriter_is_not_identity_when_the_mids_differ():
    ids = {MID_URI: 4}
    assert not ExtensionRewriter(ids, dict(ids), "0", "1").identity


def test_rewrite_maps_source_ids_to_sink_ids():
    rewriter = ExtensionRewriter(
        {ABS_SEND_TIME: 2, AUDIO_LEVEL: 1}, {ABS_SEND_TIME: 3, AUDIO_LEVEL: 5}, None, None
    )
    profile, block = rewriter.rewrite(
        ONE_BYTE_PROFILE, one_byte((2, b"\x01\x02\x03"), (1, b"\x90"))
    )
    assert parse_elements(profile, block) == [(3, b"\x01\x02\x03"), (5, b"\x90")]


def test_rewrite_drops_extensions_the_sink_did_not_negotiate():
    rewriter = ExtensionRewriter({ABS_SEND_TIME: 2, AUDIO_LEVEL: 1}, {AUDIO_LEVEL: 1}, None, None)
    profile, block = rewriter.rewrite(
        ONE_BYTE_PROFILE, one_byte((2, b"\x01\x02\x03"), (1, b"\x90"))
    )
    assert parse_elements(profile, block) == [(1, b"\x90")]


def test_rewrite_drops_elements_whose_id_the_source_never_negotiated():
    rewriter = ExtensionRewriter({AUDIO_LEVEL: 1}, {AUDIO_LEVEL: 1}, None, None)
    profile, block = rewriter.rewrite(ONE_BYTE_PROFILE, one_byte((9, b"\xee"), (1, b"\x90")))
    assert parse_elements(profile, block) == [(1, b"\x90")]


def test_rewrite_with_nothing_left_returns_an_empty_block():
    rewriter = ExtensionRewriter({ABS_SEND_TIME: 2}, {AUDIO_LEVEL: 1}, None, None)
    assert rewriter.rewrite(ONE_BYTE_PROFILE, one_byte((2, b"\x01\x02\x03"))) == (
        ONE_BYTE_PROFILE,
        b"",
    )


def test_rewrite_replaces_the_mid_value_with_the_sinks_mid():
    rewriter = ExtensionRewriter({MID_URI: 4}, {MID_URI: 9}, "video0", "1")
    profile, block = rewriter.rewrite(ONE_BYTE_PROFILE, one_byte((4, b"video0")))
    assert parse_elements(profile, block) == [(9, b"1")]


def test_rewrite_drops_the_mid_when_the_sink_has_no_mid():
    rewriter = ExtensionRewriter(
        {MID_URI: 4, AUDIO_LEVEL: 1}, {MID_URI: 4, AUDIO_LEVEL: 1}, "0", None
    )
    profile, block = rewriter.rewrite(ONE_BYTE_PROFILE, one_byte((4, b"0"), (1, b"\x90")))
    assert parse_elements(profile, block) == [(1, b"\x90")]


def test_rewrite_falls_back_to_two_byte_form_for_a_mid_longer_than_16_bytes():
    long_mid = "a-very-long-mid-value-indeed"
    rewriter = ExtensionRewriter({MID_URI: 4}, {MID_URI: 4}, "0", long_mid)
    profile, block = rewriter.rewrite(ONE_BYTE_PROFILE, one_byte((4, b"0")))
    assert (profile, parse_elements(profile, block)) == (
        TWO_BYTE_PROFILE,
        [(4, long_mid.encode())],
    )


def test_rewrite_falls_back_to_two_byte_form_for_a_sink_id_above_14():
    rewriter = ExtensionRewriter({AUDIO_LEVEL: 1}, {AUDIO_LEVEL: 20}, None, None)
    profile, block = rewriter.rewrite(ONE_BYTE_PROFILE, one_byte((1, b"\x90")))
    assert (profile, parse_elements(profile, block)) == (TWO_BYTE_PROFILE, [(20, b"\x90")])


def test_rewrite_turns_a_two_byte_block_into_one_byte_form_when_everything_fits():
    rewriter = ExtensionRewriter({AUDIO_LEVEL: 20}, {AUDIO_LEVEL: 1}, None, None)
    profile, block = rewriter.rewrite(TWO_BYTE_PROFILE, two_byte((20, b"\x90")))
    assert (profile, parse_elements(profile, block)) == (ONE_BYTE_PROFILE, [(1, b"\x90")])


def test_rewrite_of_a_malformed_block_is_none():
    rewriter = ExtensionRewriter({AUDIO_LEVEL: 1}, {AUDIO_LEVEL: 2}, None, None)
    assert rewriter.rewrite(ONE_BYTE_PROFILE, bytes([0x13, 0xAA])) is None


# --- ExtensionRewriter.rewrite_in_place -----------------------------------------------------


def patched(rewriter: ExtensionRewriter, block: bytes) -> tuple[bool, bytes]:
    buf = bytearray(b"HDR" + block + b"PAY")
    ok = rewriter.rewrite_in_place(buf, 3, 3 + len(block))
    return ok, bytes(buf[3:-3])


def test_in_place_rewrite_changes_only_the_id_nibbles():
    rewriter = ExtensionRewriter(
        {ABS_SEND_TIME: 3, TRANSPORT_CC: 5}, {ABS_SEND_TIME: 2, TRANSPORT_CC: 4}, None, None
    )
    ok, block = patched(
        rewriter, one_byte((3, b"\x01\x02\x03"), (5, b"\x00\x07")) + b"\x00\x00\x00"
    )
    assert ok
    assert block == one_byte((2, b"\x01\x02\x03"), (4, b"\x00\x07")) + b"\x00\x00\x00"


def test_in_place_rewrite_writes_the_sinks_mid_of_the_same_length():
    rewriter = ExtensionRewriter({MID_URI: 1}, {MID_URI: 9}, "0", "1")
    assert patched(rewriter, one_byte((1, b"0"))) == (True, one_byte((9, b"1")))


def test_in_place_rewrite_gives_up_when_the_mid_changes_length():
    rewriter = ExtensionRewriter({MID_URI: 1}, {MID_URI: 1}, "0", "video")
    assert patched(rewriter, one_byte((1, b"0")))[0] is False


def test_in_place_rewrite_gives_up_when_an_element_must_be_dropped():
    rewriter = ExtensionRewriter({ABS_SEND_TIME: 3, AUDIO_LEVEL: 4}, {ABS_SEND_TIME: 3}, None, None)
    assert patched(rewriter, one_byte((4, b"\x80"), (3, b"\x01\x02\x03")))[0] is False


def test_in_place_rewrite_gives_up_when_the_sink_id_needs_the_two_byte_form():
    rewriter = ExtensionRewriter({ABS_SEND_TIME: 3}, {ABS_SEND_TIME: 15}, None, None)
    assert patched(rewriter, one_byte((3, b"\x01\x02\x03")))[0] is False


def test_in_place_rewrite_gives_up_on_an_element_running_past_the_block():
    rewriter = ExtensionRewriter({ABS_SEND_TIME: 3}, {ABS_SEND_TIME: 2}, None, None)
    assert patched(rewriter, bytes([0x32, 0x01]))[0] is False
