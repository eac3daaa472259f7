"""LoginThrottle without a network, with a fake clock."""

from __future__ import annotations

from signaling.login_throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock) -> LoginThrottle:
    return LoginThrottle(per_account=2, per_address=3, window_seconds=60, clock=clock)


def test_attempts_under_the_limit_are_allowed():
    limiter = throttle(Clock())
    limiter.record_failure("alice", "203.0.113.7")
    assert limiter.retry_after("alice", "203.0.113.7") == 0


def test_retry_after_counts_down_to_when_the_oldest_failure_leaves_the_window():
    clock = Clock()
    limiter = throttle(clock)
    limiter.record_failure("alice", "203.0.113.7")
    clock.now += 10
    limiter.record_failure("alice", "203.0.113.7")
    assert limiter.retry_after("alice", "203.0.113.8") == 50


def test_failures_older_than_the_window_are_forgotten():
    clock = Clock()
    limiter = throttle(clock)
    limiter.record_failure("alice", "203.0.113.7")
    limiter.record_failure("alice", "203.0.113.7")
    clock.now += 60
    assert limiter.retry_after("alice", "203.0.113.7") == 0


def test_usernames_are_counted_case_insensitively():
    limiter = throttle(Clock())
    limiter.record_failure("Alice", "203.0.113.7")
    limiter.record_failure("ALICE", "203.0.113.8")
    assert limiter.retry_after("alice", "198.51.100.1") > 0


def test_address_limit_applies_across_accounts():
    limiter = throttle(Clock())
    for name in ("a", "b", "c"):
        limiter.record_failure(name, "203.0.113.7")
    assert limiter.retry_after("d", "203.0.113.7") > 0
    assert limiter.retry_after("d", "203.0.113.8") == 0
