"""Whole-run checks: every log record of the run is kept, and at the end none may contain a
password, token, display name or note that a test created (tests/privacy_canaries.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

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


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger().addHandler(_RECORDS)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)


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
