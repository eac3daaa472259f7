"""Every test starts from the same process-wide state, whatever ran before it: pytest-randomly
shuffles the order, so state one test leaves behind makes another pass or fail by chance."""

from __future__ import annotations

import logging

import aioice.ice

from tests.conftest import OUR_LOGGERS, whole_run_records


def test_a_test_starts_with_the_runs_logging_configuration():
    # signaling.logs.configure_logging (test_logs.py calls it) sets our loggers to its level
    # and puts a handler of its own on the root logger: the whole-run privacy check would then
    # miss every DEBUG and INFO record of the tests after it.
    root = logging.getLogger()
    assert whole_run_records() in root.handlers
    assert [h for h in root.handlers if h.get_name() == "sprechzimmer"] == []
    for name in OUR_LOGGERS:
        logger = logging.getLogger(name)
        assert (logger.level, logger.propagate, logger.handlers) == (logging.DEBUG, True, [])


def test_a_test_starts_with_loopback_only_ice_candidates():
    # use_loopback_only() (tests/sfu/media_peers.py) patches aioice for the rest of the process;
    # every test starts with it, so no test depends on whether one that calls it ran first.
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]
