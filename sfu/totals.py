"""Relay-wide counters that outlive rooms, for metrics: Prometheus counters never go down, so a
closed room's counts are folded in here instead of vanishing with it."""

from __future__ import annotations

from collections.abc import Iterable

from .forwarding_state import Counters
from .snapshot import ForwardingCounts, counts_of


class RelayTotals:
    def __init__(self) -> None:
        self.rooms_created = 0
        self.legs_connected = 0
        self.ice_failures = 0
        self.dtls_failures = 0
        self.consent_expiries = 0
        self.retired = ForwardingCounts()  # what the closed rooms forwarded

    def retire(self, counters: Iterable[Counters]) -> None:
        """Keep a closing room's forwarding counts."""
        for c in counters:
            self.retired += counts_of(c)
