"""Structured log lines and client address rendering per privacy.log_ip."""

from __future__ import annotations

import io
import json
import logging

import pytest

from signaling.config import LoggingConfig
from signaling.logs import configure_logging, log_event, render_ip


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1::"),
        ("::ffff:203.0.113.77", "203.0.113.0"),
    ],
)
def test_truncate_keeps_ipv4_slash24_and_ipv6_slash48(address, expected):
    assert render_ip(address, "truncate") == expected


def test_full_keeps_the_whole_address():
    assert render_ip("203.0.113.77", "full") == "203.0.113.77"


def test_off_renders_a_dash():
    assert render_ip("203.0.113.77", "off") == "-"


def test_unparseable_address_renders_a_dash():
    assert render_ip("unix-socket", "full") == "-"


def capture(format_: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logger = configure_logging(LoggingConfig(format=format_, level="info"), stream)
    return logger, stream


def test_kv_line_has_timestamp_level_event_and_fields():
    logger, stream = capture("kv")
    log_event(logger, "server_started", url="http://127.0.0.1:8080", rooms=0)
    line = stream.getvalue().strip()
    assert (
        line.split(" ", 1)[1] == "level=info event=server_started url=http://127.0.0.1:8080 rooms=0"
    )
    assert line.startswith("ts=") and line.split(" ", 1)[0].endswith("Z")


def test_kv_values_with_spaces_are_quoted():
    logger, stream = capture("kv")
    log_event(logger, "e", reason='a b "c"')
    assert stream.getvalue().strip().endswith('reason="a b \\"c\\""')


def test_json_line_is_one_object():
    logger, stream = capture("json")
    log_event(logger, "server_started", url="u")
    record = json.loads(stream.getvalue())
    assert (record["level"], record["event"], record["url"]) == ("info", "server_started", "u")


@pytest.mark.parametrize("name", ["password", "invite_token", "client_display_name", "note"])
def test_fields_named_like_secrets_or_personal_data_are_redacted(name):
    logger, stream = capture("kv")
    log_event(logger, "e", **{name: "SENSITIVE"})
    assert "SENSITIVE" not in stream.getvalue()
    assert f"{name}=[redacted]" in stream.getvalue()


def test_level_filters_lower_events():
    stream = io.StringIO()
    logger = configure_logging(LoggingConfig(format="kv", level="warning"), stream)
    log_event(logger, "quiet")
    log_event(logger, "loud", logging.WARNING)
    assert "quiet" not in stream.getvalue()
    assert "event=loud" in stream.getvalue()
