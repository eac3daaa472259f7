"""Whole-run checks: every log record of the run is kept, and at the end none may contain a
password, token, display name or note that a test created (tests/privacy_canaries.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import aioice.ice
import pytest

from tests.ports import PortRange, reserve_ports
from tests.privacy_canaries import CANARIES

OUR_LOGGERS = ("sprechzimmer", "sfu", "signaling")


class _EveryRecord(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        self.lines.append(f"{record.name} {text} {getattr(record, 'fields', '')}")


_RECORDS = _EveryRecord()


def whole_run_records() -> logging.Handler:
    """The handler that keeps every record of the run for the privacy check."""
    return _RECORDS


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger().addHandler(_RECORDS)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)


@pytest.fixture(autouse=True)
def same_start_for_every_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Process-wide state as the run configured it, whatever ran before (pytest-randomly
    shuffles the order): ICE candidates on loopback only, and logging put back afterwards."""
    # Tests must not depend on the host's network interfaces; tests/sfu/media_peers.py's
    # use_loopback_only() does the same for good, this undoes it after each test.
    monkeypatch.setattr(aioice.ice, "get_host_addresses", _loopback_only)
    saved = _logging_state()
    yield
    _restore_logging(saved)


def _loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"]


_LoggerState = tuple[int, bool, bool, list[logging.Handler]]


def _logging_state() -> dict[str, _LoggerState]:
    loggers = {
        name: logger
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    loggers[""] = logging.getLogger()
    return {
        name: (logger.level, logger.propagate, logger.disabled, list(logger.handlers))
        for name, logger in loggers.items()
    }


def _restore_logging(saved: dict[str, _LoggerState]) -> None:
    """Levels, propagation and handlers as before the test (signaling.logs.configure_logging
    changes all three). pytest's own capture handlers on the root logger come and go with each
    test phase, so those are left to pytest."""
    for name, (level, propagate, disabled, handlers) in saved.items():
        logger = logging.getLogger(name or None)
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, disabled
        for handler in list(logger.handlers):
            if handler not in handlers and not _pytests(handler):
                logger.removeHandler(handler)
        for handler in handlers:
            if handler not in logger.handlers and not _pytests(handler):
                logger.addHandler(handler)


def _pytests(handler: logging.Handler) -> bool:
    return type(handler).__module__.startswith("_pytest")


@pytest.fixture
def udp_ports() -> Iterator[PortRange]:
    """100 UDP ports for the relay that no concurrent test or run uses (tests/ports.py)."""
    with reserve_ports(100) as ports:
        yield ports


@pytest.fixture
def tcp_port() -> Iterator[int]:
    """A port for a server the test starts in another process, free for TCP and UDP and held for
    the test (tests/ports.py): a port found by binding port 0 and letting go is an ephemeral one,
    which any socket of the machine may take before the server binds it."""
    with reserve_ports(1, tcp=True) as ports:
        yield ports.low


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    text = "\n".join(_RECORDS.lines)
    leaked = sorted(c for c in CANARIES if c in text)
    if leaked:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"privacy: {len(leaked)} secret(s) created by tests appear in the logs"
        if reporter is not None:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
