"""KeyframeRequestLimiter: at most one keyframe request upstream per interval."""

from __future__ import annotations

from sfu.keyframe_limiter import KeyframeRequestLimiter


def test_first_request_is_allowed():
    assert KeyframeRequestLimiter(interval=0.5).allow(100.0)


def test_second_request_within_the_interval_is_refused():
    limiter = KeyframeRequestLimiter(interval=0.5)
    limiter.allow(100.0)
    assert not limiter.allow(100.49)


def test_request_a_full_interval_later_is_allowed():
    limiter = KeyframeRequestLimiter(interval=0.5)
    limiter.allow(100.0)
    assert limiter.allow(100.5)


def test_refused_requests_do_not_extend_the_interval():
    limiter = KeyframeRequestLimiter(interval=0.5)
    limiter.allow(100.0)
    limiter.allow(100.4)
    assert limiter.allow(100.5)


def test_reset_allows_the_next_request_at_once():
    limiter = KeyframeRequestLimiter(interval=0.5)
    limiter.allow(100.0)
    limiter.reset()
    assert limiter.allow(100.1)
