"""Browser stand-ins for relay tests: aiortc peers that send real VP8 + Opus and check what
they decode. Each peer paints its own picture (two colours, split differently) and plays its own
tone, so a test can tell the other side's media from an echo of its own."""

from __future__ import annotations

import asyncio
import fractions
import itertools
import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aioice.ice
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)
from av import AudioFrame, VideoFrame

from sfu.aiortc_glue import guard_peer_connection

WIDTH, HEIGHT = 320, 240
AUDIO_RATE = 48000
AUDIO_PTIME = 0.02


def use_loopback_only() -> None:
    """Gather client candidates on 127.0.0.1 only: tests must not depend on the host's NICs."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


@dataclass(frozen=True)
class Picture:
    """Two colours split left/right (``vertical``) or top/bottom."""

    first: tuple[int, int, int]
    second: tuple[int, int, int]
    vertical: bool

    def expected_at(self, x: float, y: float) -> tuple[int, int, int]:
        in_first = x < 0.5 if self.vertical else y < 0.5
        return self.first if in_first else self.second


RED_BLUE = Picture((220, 30, 30), (30, 30, 220), vertical=True)
GREEN_WHITE = Picture((30, 200, 30), (235, 235, 235), vertical=False)


class PictureTrack(VideoStreamTrack):
    def __init__(self, picture: Picture) -> None:
        super().__init__()
        row_first = bytes(picture.first) * (WIDTH // 2) + bytes(picture.second) * (WIDTH // 2)
        if picture.vertical:
            data = row_first * HEIGHT
        else:
            data = (bytes(picture.first) * WIDTH) * (HEIGHT // 2) + (
                bytes(picture.second) * WIDTH
            ) * (HEIGHT // 2)
        self._data = data

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(WIDTH, HEIGHT, "rgb24")
        frame.planes[0].update(self._data)
        frame.pts = pts
        frame.time_base = time_base
        return frame


class ToneTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, frequency: float) -> None:
        super().__init__()
        self._frequency = frequency
        self._samples = int(AUDIO_RATE * AUDIO_PTIME)
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._pts / AUDIO_RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        samples = [
            int(8000 * math.sin(2 * math.pi * self._frequency * (self._pts + i) / AUDIO_RATE))
            for i in range(self._samples)
        ]
        frame = AudioFrame(format="s16", layout="mono", samples=self._samples)
        frame.planes[0].update(struct.pack(f"<{self._samples}h", *samples))
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._pts += self._samples
        return frame


def region_colour(frame: VideoFrame, x: float, y: float) -> tuple[int, int, int]:
    """Mean colour of a small patch around (x, y), given as fractions of width and height."""
    rgb = frame.to_ndarray if False else None  # numpy is not a dependency; read the plane
    del rgb
    image = frame.reformat(format="rgb24")
    plane = image.planes[0]
    data = bytes(plane)
    stride = plane.line_size
    cx, cy = int(x * image.width), int(y * image.height)
    totals = [0, 0, 0]
    count = 0
    for py in range(max(cy - 8, 0), min(cy + 8, image.height), 2):
        for px in range(max(cx - 8, 0), min(cx + 8, image.width), 2):
            offset = py * stride + px * 3
            for c in range(3):
                totals[c] += data[offset + c]
            count += 1
    return tuple(t // count for t in totals)  # type: ignore[return-value]


def looks_like(frame: VideoFrame, picture: Picture, tolerance: int = 60) -> bool:
    for x, y in ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)):
        seen = region_colour(frame, x, y)
        want = picture.expected_at(x, y)
        if any(abs(a - b) > tolerance for a, b in zip(seen, want, strict=True)):
            return False
    return True


def audio_rms(frame: AudioFrame) -> float:
    data = bytes(frame.planes[0])
    count = len(data) // 2
    if count == 0:
        return 0.0
    samples = struct.unpack(f"<{count}h", data[: count * 2])
    return math.sqrt(sum(s * s for s in samples) / count)


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Wait for ``condition`` with a deadline; on timeout fail with ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.02)


@dataclass
class Received:
    video_frames: int = 0
    audio_frames: int = 0
    loud_audio_frames: int = 0
    last_video: VideoFrame | None = None
    video_times: list[float] = field(default_factory=list)  # monotonic arrival of each frame
    tasks: list[asyncio.Task] = field(default_factory=list)

    def longest_gap(self, since: float = 0.0) -> float:
        """The longest time between two decoded video frames after ``since`` (a freeze)."""
        times = [t for t in self.video_times if t >= since]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


class MediaPeer:
    """A browser stand-in: offers audio + video, sends its picture and tone, decodes the other's."""

    def __init__(
        self,
        picture: Picture,
        tone: float,
        send_audio: bool = True,
        chat: bool = False,
        h264: bool = False,
    ) -> None:
        self.picture = picture
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.received = Received()
        self.chat_messages: list[str | bytes] = []
        self.chat = None
        if send_audio:
            self.pc.addTrack(ToneTrack(tone))
        self.pc.addTrack(PictureTrack(picture))
        if not h264:
            # VP8 only, like Debian's firefox-esr. Two peers that both offered H.264 would end on
            # it only after the first one answers `renegotiate` with a fresh offer, as the call
            # page does; these peers do not, so only the codec tests (tests/sfu/test_relay_codecs.py)
            # and the browser tests ask for it.
            vp8 = [
                c
                for c in RTCRtpSender.getCapabilities("video").codecs
                if c.mimeType in ("video/VP8", "video/rtx")
            ]
            for transceiver in self.pc.getTransceivers():
                if transceiver.kind == "video":
                    transceiver.setCodecPreferences(vp8)
        if chat:  # as the call page does: a pre-negotiated channel, id 0
            self.chat = self.pc.createDataChannel("chat", negotiated=True, id=0)
            self.chat.on("message", self.chat_messages.append)
        self.pc.on("track", self._on_track)
        # the relay's own guard: only the relay's authenticated traffic reaches this peer's ICE
        # and DTLS, so a stray datagram from another test cannot kill its handshake
        guard_peer_connection(self.pc)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def close(self) -> None:
        for task in self.received.tasks:
            task.cancel()
        await self.pc.close()

    def _on_track(self, track: MediaStreamTrack) -> None:
        self.received.tasks.append(asyncio.ensure_future(self._consume(track)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            if track.kind == "video":
                self.received.video_frames += 1
                self.received.last_video = frame
                self.received.video_times.append(time.monotonic())
            else:
                self.received.audio_frames += 1
                if audio_rms(frame) > 500:
                    self.received.loud_audio_frames += 1

    async def channel_open(self, timeout: float = 15.0) -> None:
        """Wait until this peer's own chat channel is open (it can send), or fail saying so."""
        await until(
            lambda: self.chat is not None and self.chat.readyState == "open",
            "the peer's own end of its chat channel opened",
            timeout,
        )

    async def wait_for(self, predicate, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.received):
                return True
            await asyncio.sleep(0.05)
        return predicate(self.received)
