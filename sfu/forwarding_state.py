"""What a forwarder keeps per leg and per stream: plain objects read on the hot path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .header_extensions import ExtensionRewriter
from .media_params import KindParams
from .packet_cache import PacketCache
from .reception import ReceptionStats
from .stream_mapping import StreamMapping


class Sender(Protocol):
    def send_rtp(self, packet: bytes) -> None: ...
    def send_rtcp(self, packet: bytes) -> None: ...


@dataclass
class Endpoint:
    """A connected leg as the forwarder sees it: what it negotiated and how to reach it."""

    params: dict[str, KindParams]
    wire: Sender


class Counters:
    """Plain integer counters; read by stats and metrics, never formatted on the hot path."""

    __slots__ = (
        "audio_bytes",
        "audio_packets",
        "dropped",
        "keyframe_requests_received",
        "keyframe_requests_sent",
        "nack_upstream",
        "nacks_received",
        "packets_lost",
        "retransmit_hits",
        "retransmit_misses",
        "video_bytes",
        "video_packets",
    )
    # for the type checker; __init__ sets each to 0
    audio_bytes: int
    audio_packets: int
    dropped: int
    keyframe_requests_received: int
    keyframe_requests_sent: int
    nack_upstream: int
    nacks_received: int
    packets_lost: int
    retransmit_hits: int
    retransmit_misses: int
    video_bytes: int
    video_packets: int

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Upstream:
    """The receive side of one stream (audio, camera or screen: ``media_params.STREAMS_BY_KIND``):
    the SSRC the source leg now sends on that m-line, and its statistics.

    One per stream, so a source that changes SSRC replaces its predecessor here instead of
    growing a table; the relay's receiver reports are made from these.
    """

    __slots__ = ("params", "reception", "rtx_ssrc", "ssrc", "stream")

    def __init__(self, params: KindParams, stream: str) -> None:
        self.stream = stream
        self.params = params  # what the source leg negotiated for this stream's m-line
        self.ssrc: int | None = None  # the source SSRC now forwarded
        self.rtx_ssrc: int | None = None  # the source's RTX SSRC, once one was seen
        self.reception: ReceptionStats | None = None  # of ``ssrc``


class Downstream:
    """The send side of one stream: the one continuous stream the sink leg receives on the
    m-line of that name (its own SSRC, sequence numbers, packet cache)."""

    __slots__ = ("cache", "mapping", "params", "rtx_seq", "sent_reports", "stream")

    def __init__(self, params: KindParams, stream: str) -> None:
        self.stream = stream
        self.params = params  # what the sink leg negotiated for this stream's m-line
        self.mapping = StreamMapping(params.clock_rate)
        self.cache = PacketCache() if params.nack else None
        self.rtx_seq = 0  # the last sequence number sent on the sink's RTX stream
        self.sent_reports: dict[int, float] = {}  # SR NTP middle bits -> when we sent it


class MediaRoute:
    """Where packets of the source's current media SSRC of one stream go: everything ``on_rtp``
    needs, one attribute away."""

    __slots__ = (
        "cache",
        "is_video",
        "mapping",
        "out_pt",
        "out_ssrc",
        "reception",
        "rewriter",
        "wire",
    )

    def __init__(
        self,
        upstream: Upstream,
        downstream: Downstream,
        rewriter: ExtensionRewriter | None,
        wire: Sender,
    ) -> None:
        self.is_video = downstream.params.kind == "video"
        self.mapping = downstream.mapping
        self.cache = downstream.cache
        self.out_pt = downstream.params.payload_type
        self.out_ssrc = downstream.params.local_ssrc
        # a media route is made only after its upstream's reception (Forwarder._new_route)
        self.reception: ReceptionStats = upstream.reception  # type: ignore[assignment]
        self.rewriter = rewriter  # None: forward the extension block unchanged
        self.wire = wire  # the sink's; routes are rebuilt whenever the sink changes


class RtxRoute:
    """Where the source's RTX packets of one stream go: unwrapped, renumbered through the stream's
    main stream, and wrapped again for the sink's RTX stream (or sent as the original)."""

    __slots__ = ("downstream", "rewriter", "upstream")

    def __init__(
        self, upstream: Upstream, downstream: Downstream, rewriter: ExtensionRewriter | None
    ) -> None:
        self.upstream = upstream
        self.downstream = downstream
        self.rewriter = rewriter
