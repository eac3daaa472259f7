"""What the relay tells the outside about itself: frozen values, built when someone asks.

``Relay.snapshot()`` and ``Room.stats()`` read the hot path's plain integer counters once and copy
them into these dataclasses, so a Prometheus scrape or a signaling poll costs a few hundred
attribute reads and forwarding a packet costs nothing extra. Signaling reads only these (and the
exceptions); nothing in them names an address or a person.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from .forwarding_state import Counters


@dataclass(frozen=True, slots=True)
class ForwardingCounts:
    """What one direction of a room forwarded, or the whole relay since start.

    Counts of one source leg: what it sent and the relay passed on, the feedback its receiver
    sent back, and what the relay did about that feedback.
    """

    audio_packets: int = 0
    audio_bytes: int = 0  # RTP before SRTP
    video_packets: int = 0
    video_bytes: int = 0
    dropped: int = 0  # packets the relay could not parse or route
    packets_lost: int = 0  # between the sender and the relay, from the relay's receiver reports
    keyframe_requests_received: int = 0  # PLI and FIR from the receiver
    keyframe_requests_sent: int = 0  # PLI to the sender, rate-limited
    nacks_received: int = 0  # NACK messages from the receiver
    nack_upstream: int = 0  # NACK messages the relay sent the sender for its cache misses
    retransmit_hits: int = 0  # NACKed packets resent from the relay's cache
    retransmit_misses: int = 0  # NACKed packets not in the cache, asked of the sender

    @property
    def packets(self) -> int:
        """RTP packets forwarded, audio and video."""
        return self.audio_packets + self.video_packets

    def __add__(self, other: ForwardingCounts) -> ForwardingCounts:
        return ForwardingCounts(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(self))
        )


@dataclass(frozen=True, slots=True)
class LatencySnapshot:
    """The relay's sampled receive-to-send delay as a histogram (see ``sfu.latency``)."""

    bounds: tuple[float, ...] = ()  # upper bounds of the buckets, seconds, ascending
    counts: tuple[int, ...] = (0,)  # per bucket, not cumulative; one more than bounds: +Inf
    count: int = 0  # samples; the sum of counts
    sum: float = 0.0  # seconds, over all samples


@dataclass(frozen=True, slots=True)
class LegStats:
    """What the relay knows about one seat's connection; no addresses, nothing personal."""

    seat: str
    state: str  # new, connecting, connected, failed, closed; "absent" when the seat has no leg
    candidate_type: str | None = None  # of the selected pair's remote candidate: host, srflx, relay
    forwarded_from: ForwardingCounts = field(default_factory=ForwardingCounts)  # what it sent
    round_trip_time: float | None = None  # seconds, relay <-> this seat's browser
    fraction_lost: float = 0.0  # what this seat's browser reports losing of our stream
    dropped_sends: int = 0  # packets for this seat the socket had no room for
    forwarding_errors: int = 0  # bugs caught in the socket reader (logged, counted)
    remote_candidates: int = 0  # ICE candidates the browser gave, in the offer or trickled


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """One room: its seats, and the chat messages it passed on or refused."""

    legs: tuple[LegStats, ...] = ()
    chat_relayed: int = 0
    chat_dropped: int = 0  # nobody on the other side to give it to: chat is never stored
    chat_refused: int = 0  # too big or too fast, by the current legs' limits

    @property
    def forwarded(self) -> ForwardingCounts:
        """Both directions together."""
        return sum_counts(leg.forwarded_from for leg in self.legs)


@dataclass(frozen=True, slots=True)
class RelaySnapshot:
    """The whole relay at one moment: live rooms, and counters since the relay started.

    The counters never go down (Prometheus counters): a closed room's forwarding counts are kept
    in ``forwarded``.
    """

    rooms: tuple[RoomSnapshot, ...] = ()  # the live ones
    rooms_created: int = 0
    legs_connected: int = 0  # peer connections that reached connected
    ice_failures: int = 0
    dtls_failures: int = 0
    # connected legs whose browser stopped answering consent checks for 30 s (sfu.consent)
    consent_expiries: int = 0
    port_exhaustions: int = 0  # times a leg found no free port in the UDP range
    forwarded: ForwardingCounts = field(default_factory=ForwardingCounts)  # closed + live rooms
    latency: LatencySnapshot = field(default_factory=LatencySnapshot)


def counts_of(counters: Counters) -> ForwardingCounts:
    """Copy a forwarder's live counters (read once, at snapshot time)."""
    return ForwardingCounts(*(getattr(counters, f.name) for f in fields(ForwardingCounts)))


def sum_counts(counts: Iterable[ForwardingCounts]) -> ForwardingCounts:
    total = ForwardingCounts()
    for c in counts:
        total += c
    return total
