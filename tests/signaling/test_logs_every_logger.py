"""Every logger -- the relay's `sfu.*`, aiohttp's, aiortc's and aioice's -- goes through the one
configured handler: the configured format, and IP addresses in the text truncated per
`privacy.log_ip`. Before, they fell through to Python's last-resort handler, unformatted and
with full addresses."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from signaling.config import LoggingConfig
from signaling.logs import configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back for the tests that follow."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    names = ("", "sprechzimmer", "sfu", "aiohttp", "aioice", "aiortc")
    levels = {name: logging.getLogger(name).level for name in names}
    propagate = logging.getLogger("sprechzimmer").propagate
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logging.getLogger("sprechzimmer").propagate = propagate


def configured(format_: str = "kv", level: str = "info", log_ip: str = "truncate") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(LoggingConfig(format=format_, level=level), stream, log_ip=log_ip)
    return stream


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_a_relay_record_comes_out_as_a_kv_line_with_its_event_and_fields():
    stream = configured("kv")
    logging.getLogger("sfu.something").warning("event=leg_failed reason=%s", "unsupported_path")
    [line] = lines(stream)
    assert line.startswith("ts=")
    assert line.split(" ", 1)[1] == (
        "level=warning event=leg_failed logger=sfu.something reason=unsupported_path"
    )


def test_a_relay_record_comes_out_as_json_when_json_is_configured():
    stream = configured("json")
    logging.getLogger("sfu.something").warning("event=leg_failed reason=unsupported_path")
    record = json.loads(stream.getvalue())
    assert (record["level"], record["event"], record["logger"], record["reason"]) == (
        "warning",
        "leg_failed",
        "sfu.something",
        "unsupported_path",
    )


def test_an_ipv4_address_in_a_relay_record_is_truncated_to_its_slash24():
    stream = configured("kv")
    logging.getLogger("sfu.something").warning("event=ice_bind_failed address=203.0.113.77")
    text = stream.getvalue()
    assert "203.0.113.77" not in text
    assert "address=203.0.113.0" in text


def test_addresses_in_a_library_message_are_truncated_ipv4_and_ipv6():
    stream = configured("json")
    logging.getLogger("aioice.ice").warning(
        "Check CandidatePair(('198.51.100.23', 40001) -> ('2001:db8:1:2::5', 50000)) failed"
    )
    record = json.loads(stream.getvalue())
    assert record["logger"] == "aioice.ice"
    assert "198.51.100.23" not in record["message"] and "2001:db8:1:2::5" not in record["message"]
    assert "'198.51.100.0', 40001" in record["message"]
    assert "'2001:db8:1::', 50000" in record["message"]


def test_log_ip_off_removes_addresses_from_library_messages():
    stream = configured("kv", log_ip="off")
    logging.getLogger("aiohttp.server").warning("peer 203.0.113.77 sent garbage")
    text = stream.getvalue()
    assert "203.0.113" not in text
    assert 'message="peer - sent garbage"' in text


def test_times_and_version_numbers_are_not_mistaken_for_addresses():
    stream = configured("kv")
    logging.getLogger("aiortc").warning("at 10:00:00 aiortc 1.9.0 said ::")
    assert 'message="at 10:00:00 aiortc 1.9.0 said ::"' in stream.getvalue()


def test_an_aiohttp_error_shows_the_exception_type_but_not_its_text_or_traceback():
    stream = configured("kv")
    try:
        raise ValueError("Anna Beispiel, 203.0.113.77")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    [line] = lines(stream)
    assert "level=error" in line and "error=ValueError" in line
    assert "Anna" not in line and "Traceback" not in line


def test_library_info_chatter_is_left_out_but_its_warnings_come_through():
    stream = configured("kv", level="debug")
    logging.getLogger("aioice.ice").info("Connection(0) State.NEW -> State.CHECKING")
    logging.getLogger("aioice.ice").warning("marker")
    assert [line.split(" ", 1)[1] for line in lines(stream)] == [
        "level=warning event=log logger=aioice.ice message=marker"
    ]


def test_relay_debug_records_come_through_when_debug_is_configured():
    stream = configured("kv", level="debug")
    logging.getLogger("sfu.leg").debug("event=leg_state state=connected")
    assert "event=leg_state" in stream.getvalue()


def test_own_events_still_reach_the_handler_once():
    stream = configured("kv")
    logging.getLogger("sprechzimmer").info("server_started", extra={"fields": {"rooms": 0}})
    assert [line.split(" ", 1)[1] for line in lines(stream)] == [
        "level=info event=server_started rooms=0"
    ]


def test_configuring_twice_leaves_one_handler():
    configured("kv")
    stream = configured("kv")
    logging.getLogger("sfu.room").warning("event=once")
    assert len(lines(stream)) == 1
