"""Which video codec a room's two legs use: the best one both browsers share.

The relay never decodes, so both legs must carry the same codec. H.264 where both browsers offer
it with the same profile-level-id and packetization-mode 1 (phones encode it in hardware: VP8
costs them battery and heat), VP8 otherwise (every WebRTC browser has it).

A leg is answered when its browser joins, and the other browser's codecs are known only once it
has joined too. So the first leg gets VP8 -- it works with whoever comes -- and when the second
browser's offer shows that both share H.264, that leg is answered with H.264 and the room asks
the first browser to offer again (``Room.on_renegotiate``); its new leg is answered with H.264.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiortc.sdp import SessionDescription

# Constrained Baseline first: what every H.264 decoder takes, and what iPhones and Chromium both
# offer; then Baseline, then Main. Debian's chromium has no High.
H264_PROFILES = ("42e01f", "42001f", "4d001f")


@dataclass(frozen=True, slots=True)
class VideoCodec:
    mime: str  # "video/VP8" or "video/H264"
    profile_level_id: str | None = None  # H.264 only, lower case

    def matches(self, mime: str, parameters: Mapping[str, object]) -> bool:
        """Whether a codec entry of an SDP (aiortc's RTCRtpCodecParameters) is this codec."""
        if mime.lower() != self.mime.lower():
            return False
        if self.profile_level_id is None:
            return True
        return (
            str(parameters.get("profile-level-id", "")).lower() == self.profile_level_id
            and str(parameters.get("packetization-mode", "0")) == "1"
        )

    def __str__(self) -> str:
        return f"{self.mime};{self.profile_level_id}" if self.profile_level_id else self.mime


VP8 = VideoCodec("video/VP8")


def offered_video_codecs(offer: str | SessionDescription) -> frozenset[VideoCodec]:
    """The codecs of the offer's first video m-line that the relay can forward."""
    description = SessionDescription.parse(offer) if isinstance(offer, str) else offer
    video = next((m for m in description.media if m.kind == "video"), None)
    if video is None:
        return frozenset()
    found: set[VideoCodec] = set()
    for codec in video.rtp.codecs:
        mime = codec.mimeType.lower()
        if mime == "video/vp8":
            found.add(VP8)
        elif mime == "video/h264" and str(codec.parameters.get("packetization-mode")) == "1":
            profile = str(codec.parameters.get("profile-level-id", "")).lower()
            if profile in H264_PROFILES:
                found.add(VideoCodec("video/H264", profile))
    return frozenset(found)


def best_shared(mine: frozenset[VideoCodec], other: frozenset[VideoCodec] | None) -> VideoCodec:
    """The codec for a leg offering ``mine`` when the other leg offered ``other`` (None: not
    known yet, so VP8, which the other will have)."""
    if other is not None:
        for profile in H264_PROFILES:
            h264 = VideoCodec("video/H264", profile)
            if h264 in mine and h264 in other:
                return h264
    # every WebRTC browser has VP8; an offer without it is refused (Leg.answer says so)
    return VP8
