"""What one leg negotiated per media kind, in the compact form the forwarder reads.

Plain data: the forwarder and its tests and benchmarks must not load aiortc. ``kind_params``
reads aiortc's parameter objects by attribute only, so aiortc_glue's type is imported for the
annotation alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .aiortc_glue import NegotiatedMedia


# The streams a leg can carry, each on its own m-line: the forwarder keeps one upstream and one
# downstream per stream, and a stream goes to the other leg's stream of the same name. The first
# video m-line is the camera, a second one the shared screen (docs/architecture.md#screen-sharing).
AUDIO = "audio"
CAMERA = "video"
SCREEN = "screen"
STREAMS_BY_KIND = {"audio": (AUDIO,), "video": (CAMERA, SCREEN)}


@dataclass(frozen=True, slots=True)
class KindParams:
    """One leg's negotiated parameters for one kind (audio or video).

    The answer keeps the browser's payload types and extension ids, so the same numbers hold for
    what the leg sends us and what we send it.
    """

    kind: str
    mid: str | None
    payload_type: int
    rtx_payload_type: int | None
    clock_rate: int
    ext_ids: dict[str, int]
    local_ssrc: int  # the SSRC the relay sends this leg's browser for this kind
    local_rtx_ssrc: int | None
    feedback: frozenset[tuple[str, str | None]]
    # the SSRCs the browser announced for this m-line (media, then RTX): with two video m-lines
    # of the same payload type, they (or the mid extension) tell the camera from the screen
    remote_ssrcs: tuple[int, ...] = ()
    # the codec and, for H.264, its profile ("video/h264;42e01f"): the forwarder passes packets
    # only between legs of the same codec, as the relay cannot transcode
    codec: str = ""

    @property
    def nack(self) -> bool:
        return ("nack", None) in self.feedback

    @property
    def remb(self) -> bool:
        return ("goog-remb", None) in self.feedback

    @property
    def transport_cc(self) -> bool:
        return ("transport-cc", None) in self.feedback


def kind_params(media: NegotiatedMedia) -> KindParams | None:
    """Condense aiortc's parameters; None when the transceiver negotiated no usable codec."""
    parameters = media.send or media.receive
    if parameters is None or not parameters.codecs:
        return None
    main = parameters.codecs[0]
    if main.payloadType is None:
        return None  # aiortc types it optional; a negotiated codec always has one
    rtx = next(
        (
            c
            for c in parameters.codecs
            if c.mimeType.lower().endswith("/rtx") and c.parameters.get("apt") == main.payloadType
        ),
        None,
    )
    return KindParams(
        kind=media.kind,
        mid=media.mid,
        payload_type=main.payloadType,
        rtx_payload_type=rtx.payloadType if rtx else None,
        clock_rate=main.clockRate,
        ext_ids={e.uri: e.id for e in parameters.headerExtensions},
        local_ssrc=media.local_ssrc,
        local_rtx_ssrc=media.local_rtx_ssrc if rtx else None,
        feedback=frozenset((fb.type, fb.parameter) for fb in main.rtcpFeedback),
        remote_ssrcs=_announced_ssrcs(media),
        codec=_codec_name(main.mimeType, main.parameters),
    )


def _codec_name(mime: str, parameters: Mapping[str, object]) -> str:
    name = mime.lower()
    if name == "video/h264":
        name += ";" + str(parameters.get("profile-level-id", "")).lower()
    return name


def _announced_ssrcs(media: NegotiatedMedia) -> tuple[int, ...]:
    """The media and RTX SSRCs the browser's offer listed for this m-line, if any."""
    receive = media.receive
    if receive is None:
        return ()
    ssrcs: list[int] = []
    for encoding in receive.encodings:
        ssrcs.append(encoding.ssrc)
        if encoding.rtx is not None:
            ssrcs.append(encoding.rtx.ssrc)
    return tuple(ssrcs)
