"""Forwarder with two video streams per leg (camera and screen, the same payload types): each
source stream goes to the sink's stream of the same name, and keyframes are asked per stream."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sfu import rtcp
from sfu.forwarder import Endpoint, Forwarder
from sfu.header_extensions import MID_URI
from sfu.media_params import CAMERA, SCREEN
from tests.sfu.test_unit_forwarder import (
    SINK_SSRC,
    SINK_VIDEO,
    SOURCE_VIDEO,
    Call,
    Clock,
    parse_rtp,
    rtp_packet,
    sink_sends,
    upstream_plis,
)

CAMERA_SSRC, SCREEN_SSRC = 0x1111_0001, 0x3333_0001
SOURCE_CAMERA = replace(SOURCE_VIDEO, mid="1", remote_ssrcs=(CAMERA_SSRC, CAMERA_SSRC + 1))
SOURCE_SCREEN = replace(
    SOURCE_VIDEO, mid="2", local_ssrc=0xAAAA_0003, remote_ssrcs=(SCREEN_SSRC, SCREEN_SSRC + 1)
)
SINK_SCREEN_SSRC = 0x5555_0003
SINK_CAMERA = SINK_VIDEO
SINK_SCREEN = replace(SINK_VIDEO, mid="7", local_ssrc=SINK_SCREEN_SSRC, local_rtx_ssrc=None)
SOURCE_MID_ID = SOURCE_VIDEO.ext_ids[MID_URI]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def sharing(clock: Clock, source_screen=SOURCE_SCREEN, source_camera=SOURCE_CAMERA) -> Call:
    call = Call(Forwarder(keyframe_interval=0.5, clock=clock.monotonic))
    source = {CAMERA: source_camera, SCREEN: source_screen}
    call.forwarder.set_source(Endpoint(source, call.source))
    call.forwarder.set_sink(Endpoint({CAMERA: SINK_CAMERA, SCREEN: SINK_SCREEN}, call.sink))
    return call


def test_the_screen_goes_out_as_the_sinks_screen_stream_by_its_announced_ssrc(clock):
    call = sharing(clock)
    mid = [(SOURCE_MID_ID, b"2")]  # what the source sent; the sink's mids differ
    call.forwarder.on_rtp(rtp_packet(10, ssrc=SCREEN_SSRC, payload=b"screen", extensions=mid))
    call.forwarder.on_rtp(rtp_packet(20, ssrc=CAMERA_SSRC, payload=b"camera", extensions=mid))
    screen, camera = (parse_rtp(p) for p in call.sink.rtp)
    assert (screen.ssrc, screen.payload) == (SINK_SCREEN_SSRC, b"screen")
    assert (camera.ssrc, camera.payload) == (SINK_SSRC, b"camera")
    # the sink's browser demultiplexes on the mid: each carries its own m-line's
    assert dict(screen.extensions[1])[SINK_VIDEO.ext_ids[MID_URI]] == b"7"
    assert dict(camera.extensions[1])[SINK_VIDEO.ext_ids[MID_URI]] == b"1"


def test_without_announced_ssrcs_the_mid_extension_names_the_stream(clock):
    call = sharing(
        clock,
        source_screen=replace(SOURCE_SCREEN, remote_ssrcs=()),
        source_camera=replace(SOURCE_CAMERA, remote_ssrcs=()),
    )
    call.forwarder.on_rtp(rtp_packet(10, ssrc=0x4444, extensions=[(SOURCE_MID_ID, b"2")]))
    call.forwarder.on_rtp(rtp_packet(20, ssrc=0x5555, extensions=[(SOURCE_MID_ID, b"1")]))
    # later packets of the same SSRCs carry no mid (browsers stop sending it): routes hold
    call.forwarder.on_rtp(rtp_packet(11, ssrc=0x4444, payload=b"still screen"))
    assert [parse_rtp(p).ssrc for p in call.sink.rtp] == [
        SINK_SCREEN_SSRC,
        SINK_SSRC,
        SINK_SCREEN_SSRC,
    ]


def test_a_screen_for_a_sink_without_a_screen_line_is_dropped_not_shown_as_camera(clock):
    call = Call(Forwarder(keyframe_interval=0.5, clock=clock.monotonic))
    call.forwarder.set_source(Endpoint({CAMERA: SOURCE_CAMERA, SCREEN: SOURCE_SCREEN}, call.source))
    call.forwarder.set_sink(Endpoint({CAMERA: SINK_CAMERA}, call.sink))  # an older page
    call.forwarder.on_rtp(rtp_packet(10, ssrc=SCREEN_SSRC, payload=b"screen"))
    call.forwarder.on_rtp(rtp_packet(20, ssrc=CAMERA_SSRC, payload=b"camera"))
    assert [parse_rtp(p).payload for p in call.sink.rtp] == [b"camera"]


def test_a_pli_for_the_screen_asks_the_source_for_the_screen_only(clock):
    call = sharing(clock)
    call.forwarder.on_rtp(rtp_packet(10, ssrc=SCREEN_SSRC))
    call.forwarder.on_rtp(rtp_packet(20, ssrc=CAMERA_SSRC))
    clock.now += 5  # past the limiter's interval of the keyframes the new routes asked for
    call.source.rtcp.clear()
    sink_sends(call, rtcp.build_pli(0x9999_0001, SINK_SCREEN_SSRC))
    assert [media for _, media in upstream_plis(call)] == [SCREEN_SSRC]
    # the camera's limiter is its own: a camera PLI right after still goes out
    sink_sends(call, rtcp.build_pli(0x9999_0001, SINK_SSRC))
    assert [media for _, media in upstream_plis(call)] == [SCREEN_SSRC, CAMERA_SSRC]
