"""Relay-wide counters that outlive rooms, for metrics: Prometheus counters never go down, so a
closed room's counts are folded in here instead of vanishing with it."""

from __future__ import annotations

from collections.abc import Iterable

from .forwarding_state import Counters


class RelayTotals:
    def __init__(self) -> None:
        self.rooms_created = 0
        self.legs_connected = 0
        self.ice_failures = 0
        self.dtls_failures = 0
        self._retired: dict[str, int] = dict.fromkeys(Counters.__slots__, 0)

    def retire(self, counters: Iterable[Counters]) -> None:
        """Keep a closing room's forwarding counts."""
        for c in counters:
            for name, value in c.as_dict().items():
                self._retired[name] += value

    def forwarding(self, live: Iterable[Counters]) -> dict[str, int]:
        """Forwarding counts since start: closed rooms plus the live ones."""
        result = dict(self._retired)
        for c in live:
            for name, value in c.as_dict().items():
                result[name] += value
        return result
