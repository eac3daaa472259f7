"""Structured logs: one event per line, key=value by default, JSON by configuration.

Log an event with `log_event(logger, "server_started", url=...)`. The line reads
``ts=2025-01-01T10:00:00.000Z level=info event=server_started url=http://127.0.0.1:8080``.
Client addresses go through `render_ip` so `privacy.log_ip` is honoured everywhere.

Tokens, passwords, display names and notes must never be logged. As a second line of defence,
fields whose names say they hold such data are replaced by ``[redacted]``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import sys
import time
from typing import Any, TextIO

from signaling.config import LoggingConfig

__all__ = ["JsonFormatter", "KeyValueFormatter", "configure_logging", "log_event", "render_ip"]

LOGGER_NAME = "sprechzimmer"

_SENSITIVE_WORDS = ("token", "password", "secret", "display_name", "note", "credential")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def configure_logging(config: LoggingConfig, stream: TextIO | None = None) -> logging.Logger:
    """Point the `sprechzimmer` logger at `stream` (stderr) in the configured format."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if config.format == "json" else KeyValueFormatter())
    logger.addHandler(handler)
    logger.setLevel(_LEVELS.get(config.level, logging.ERROR))
    logger.propagate = False
    return logger


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    logger.log(level, event, extra={"fields": fields})


def render_ip(address: str | None, mode: str) -> str:
    """Render a client address per `privacy.log_ip`.

    truncate: IPv4 to its /24 (203.0.113.7 → 203.0.113.0), IPv6 to its /48
    (2001:db8:1:2::5 → 2001:db8:1::) — the /48 is the usual per-site allocation, so this keeps
    the network but not the household. full: unchanged. off: "-".
    """
    if mode == "off" or not address:
        return "-"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "-"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if mode == "full":
        return str(ip)
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in getattr(record, "fields", {}).items():
        lowered = name.lower()
        if any(word in lowered for word in _SENSITIVE_WORDS):
            value = "[redacted]"
        result[name] = value
    if record.exc_info and record.exc_info[0] is not None:
        # The exception type only: a message or traceback may carry personal data.
        result["error"] = record.exc_info[0].__name__
    return result


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        pairs = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            **_fields(record),
        }
        return " ".join(f"{key}={_kv_value(value)}" for key, value in pairs.items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        pairs = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            **_fields(record),
        }
        return json.dumps(pairs, default=str, ensure_ascii=False)


def _kv_value(value: Any) -> str:
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    if text == "" or any(c in text for c in ' "=\\\n\r\t'):
        return json.dumps(text, ensure_ascii=False)
    return text
