"""LoginThrottle.begin / succeeded and OneCheckAtATime, without a network."""

from __future__ import annotations

import asyncio

from signaling.login_throttle import Attempt, LoginThrottle, OneCheckAtATime
from tests.signaling.test_unit_login_throttle import Clock


def test_an_attempt_counts_before_its_outcome_is_known():
    limiter = LoginThrottle(per_account=2, per_address=10, window_seconds=60, clock=Clock())
    assert isinstance(limiter.begin("alice", "203.0.113.7"), Attempt)
    assert isinstance(limiter.begin("alice", "203.0.113.7"), Attempt)
    assert limiter.begin("alice", "203.0.113.8") == 60


def test_a_successful_attempt_gives_the_address_its_attempt_back():
    limiter = LoginThrottle(per_account=5, per_address=2, window_seconds=60, clock=Clock())
    limiter.record_failure("bob", "203.0.113.7")
    attempt = limiter.begin("alice", "203.0.113.7")
    assert isinstance(attempt, Attempt)
    limiter.succeeded(attempt)
    # one failure left on the address: one more attempt is allowed, and that one fills it
    assert isinstance(limiter.begin("carol", "203.0.113.7"), Attempt)
    assert limiter.begin("dave", "203.0.113.7") > 0


async def test_checks_for_one_address_run_one_at_a_time_while_other_addresses_pass():
    checks = OneCheckAtATime()
    order: list[str] = []
    release = asyncio.Event()

    async def check(name: str, address: str) -> None:
        async with checks.checking(name, address):
            order.append(f"start {name}")
            if name == "first":
                await release.wait()
            order.append(f"end {name}")

    first = asyncio.create_task(check("first", "198.51.100.66"))
    second = asyncio.create_task(check("second", "198.51.100.66"))
    other = asyncio.create_task(check("other", "203.0.113.10"))
    await other
    assert order == ["start first", "start other", "end other"]
    release.set()
    await asyncio.gather(first, second)
    assert order[3:] == ["end first", "start second", "end second"]
    assert not checks._locks, "locks of finished checks are forgotten"
