"""A browser stand-in that offers what the call page offers since screen sharing: audio, the
camera and a second video m-line for the screen, each sending its own picture; what it decodes
is kept per m-line, so a test can tell which of its transceivers a picture arrived on."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from av import VideoFrame

from sfu.aiortc_glue import guard_peer_connection
from tests.sfu.media_peers import Picture, PictureTrack, ToneTrack, looks_like


@dataclass
class Decoded:
    """What one receiving transceiver decoded."""

    frames: int = 0
    last: VideoFrame | None = None
    since: float = field(default_factory=time.monotonic)

    def shows(self, picture: Picture) -> bool:
        return self.last is not None and looks_like(self.last, picture)


class SharingPeer:
    """Offers audio (mid 0), camera (mid 1) and screen (mid 2); ``screen=None`` leaves the screen
    transceiver without a track, as the page does while nothing is shared."""

    def __init__(self, camera: Picture, screen: Picture | None, tone: float = 440.0) -> None:
        # max-bundle as the call page: aiortc's default leaves a second video transceiver on a
        # transport that BUNDLE discards (see sfu.aiortc_glue.make_peer_connection)
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.pc.addTrack(ToneTrack(tone))
        self.pc.addTrack(PictureTrack(camera))
        self.screen_transceiver: RTCRtpTransceiver = self.pc.addTransceiver(
            PictureTrack(screen) if screen is not None else "video", direction="sendrecv"
        )
        self.decoded: dict[str, Decoded] = {}  # by the receiving transceiver's mid
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)
        guard_peer_connection(self.pc)

    @property
    def camera(self) -> Decoded:
        return self.decoded.setdefault("1", Decoded())

    @property
    def screen(self) -> Decoded:
        return self.decoded.setdefault("2", Decoded())

    def decoded_counts(self) -> dict[str, int]:
        return {mid: d.frames for mid, d in self.decoded.items()}

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "video":
            return
        transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
        decoded = self.decoded.setdefault(str(transceiver.mid), Decoded())
        self._tasks.append(asyncio.ensure_future(self._consume(track, decoded)))

    async def _consume(self, track: MediaStreamTrack, decoded: Decoded) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            decoded.frames += 1
            decoded.last = frame
