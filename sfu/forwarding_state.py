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

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Route:
    """Where packets of one incoming SSRC go, with everything precomputed for the hot path."""

    __slots__ = (
        "cache",
        "is_rtx",
        "kind",
        "mapping",
        "out_pt",
        "out_ssrc",
        "reception",
        "rewriter",
        "seq_offset",
        "ts_offset",
    )

    def __init__(self) -> None:
        self.cache: PacketCache | None = None
        self.is_rtx = False
        self.kind = ""
        self.mapping: StreamMapping | None = None
        self.out_pt = 0
        self.out_ssrc = 0
        self.reception: ReceptionStats | None = None
        self.rewriter: ExtensionRewriter | None = None  # None: forward the block unchanged
        self.seq_offset = 0
        self.ts_offset = 0


class Outbound:
    """The sink-side stream of one kind: continuity, cache and RTX numbering."""

    __slots__ = ("cache", "mapping", "rtx_seq", "sent_reports")

    def __init__(self, clock_rate: int, with_cache: bool) -> None:
        self.mapping = StreamMapping(clock_rate)
        self.cache = PacketCache() if with_cache else None
        self.rtx_seq = 0
        self.sent_reports: dict[int, float] = {}  # SR NTP middle bits -> when we sent it
