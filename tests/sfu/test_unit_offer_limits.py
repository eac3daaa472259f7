"""The per-leg budget of remote ICE candidates: how many addresses, how fast (issue #11 item 3)."""

from __future__ import annotations

import pytest

from sfu import InvalidOffer
from sfu.offer_limits import (
    MAX_REMOTE_CANDIDATES,
    TRICKLE_BURST,
    TRICKLE_PER_SECOND,
    CandidateBudget,
    offered_candidates,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def udp(n: int) -> str:
    return f"candidate:{n} 1 udp 2122260223 192.0.2.1 {20000 + n} typ host"


def test_the_same_address_trickled_again_adds_no_address():
    budget = CandidateBudget(set(), clock=Clock())
    budget.spend(udp(1))
    budget.spend(udp(1))
    assert len(budget.addresses) == 1


def test_the_budget_counts_the_offers_addresses():
    budget = CandidateBudget({("1", "192.0.2.9", n) for n in range(MAX_REMOTE_CANDIDATES)})
    with pytest.raises(InvalidOffer, match="ICE candidates"):
        budget.spend(udp(1))


def test_the_trickle_rate_refills_with_time():
    clock = Clock()
    budget = CandidateBudget(set(), clock=clock)
    tcp = "candidate:1 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active"
    for _ in range(TRICKLE_BURST):
        budget.spend(tcp)
    with pytest.raises(InvalidOffer, match="a second"):
        budget.spend(tcp)
    clock.now += 1 / TRICKLE_PER_SECOND
    budget.spend(tcp)
    assert budget.addresses == set()  # TCP candidates are never checked: no address


def test_only_the_bundled_transports_candidates_count():
    sdp = (
        "v=0\r\na=group:BUNDLE 1 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"
        "a=candidate:1 1 udp 1 192.0.2.1 1000 typ host\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n"
        "a=candidate:1 1 udp 1 192.0.2.2 2000 typ host\r\n"
        "a=candidate:2 1 UDP 1 192.0.2.2 2001 typ host\r\n"
    )
    assert offered_candidates(sdp) == {("1", "192.0.2.2", 2000), ("1", "192.0.2.2", 2001)}
