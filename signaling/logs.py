"""Structured logs: one event per line, key=value by default, JSON by configuration.

Log an event with `log_event(logger, "server_started", url=...)`. The line reads
``ts=2025-01-01T10:00:00.000Z level=info event=server_started url=http://127.0.0.1:8080``.
Client addresses go through `render_ip` so `privacy.log_ip` is honoured everywhere.

Tokens, passwords, display names, notes and e-mail addresses must never be logged. As a second
line of defence, fields whose names say they hold such data are replaced by ``[redacted]``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import sys
import time
from typing import Any, TextIO

from signaling.config import LoggingConfig

__all__ = [
    "JsonFormatter",
    "KeyValueFormatter",
    "configure_logging",
    "log_event",
    "redact_addresses",
    "render_ip",
]

LOGGER_NAME = "sprechzimmer"

_SENSITIVE_WORDS = ("token", "password", "secret", "display_name", "note", "credential", "email")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}

_HANDLER_NAME = "sprechzimmer"
_OWN_LOGGERS = (LOGGER_NAME, "sfu")

# Candidates only; `ipaddress` decides. IPv6 needs two colons at least, which also lets
# "10:00:00" through to the check, where it fails and stays as it is.
_IPV4 = r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])"
_IPV6 = r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}(?![\w:])"
_ADDRESS = re.compile(f"{_IPV4}|{_IPV6}")


def configure_logging(
    config: LoggingConfig, stream: TextIO | None = None, log_ip: str = "truncate"
) -> logging.Logger:
    """Send every logger's records to `stream` (stderr) in the configured format.

    One handler on the root logger, so the relay (`sfu.*`), aiohttp, aiortc and aioice cannot
    fall through to Python's last-resort handler, which prints raw text with full addresses.
    Our own loggers (`sprechzimmer`, `sfu`) log at the configured level; libraries only from
    WARNING: aioice logs every connectivity check at INFO, addresses included. Addresses in
    the text of records are rendered per `log_ip` (`privacy.log_ip`). Returns the `sprechzimmer`
    logger.
    """
    level = _LEVELS.get(config.level, logging.ERROR)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setLevel(level)
    handler.setFormatter(
        JsonFormatter(log_ip) if config.format == "json" else KeyValueFormatter(log_ip)
    )
    root.addHandler(handler)
    root.setLevel(max(level, logging.WARNING))
    for name in _OWN_LOGGERS:
        own = logging.getLogger(name)
        for old in list(own.handlers):  # from an earlier configuration that wrote here directly
            own.removeHandler(old)
        own.setLevel(level)
        own.propagate = True
    return logging.getLogger(LOGGER_NAME)


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


def redact_addresses(text: str, mode: str) -> str:
    """`text` with every IP address in it rendered per `privacy.log_ip` (see `render_ip`)."""
    if mode == "full":
        return text
    return _ADDRESS.sub(lambda match: _render_if_address(match.group(), mode), text)


def _render_if_address(candidate: str, mode: str) -> str:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return candidate
    return render_ip(candidate, mode)


def _pairs(record: logging.LogRecord, log_ip: str) -> dict[str, Any]:
    head = {"ts": _timestamp(record), "level": record.levelname.lower()}
    if record.name == LOGGER_NAME or record.name.startswith(LOGGER_NAME + "."):
        # Our events: a constant name; addresses in fields already went through render_ip.
        return {**head, "event": record.getMessage(), **_fields(record)}
    # Anyone else's record: its text is not ours to trust, so addresses are rendered here.
    text = redact_addresses(record.getMessage(), log_ip)
    structured = _event_pairs(text)
    if structured is not None:  # the relay logs "event=name key=value ..."
        event = structured.pop("event")
        return {**head, "event": event, "logger": record.name, **structured, **_fields(record)}
    return {**head, "event": "log", "logger": record.name, "message": text, **_fields(record)}


def _event_pairs(text: str) -> dict[str, str] | None:
    """ "event=x a=b" as a dict, or None when the text is not made of key=value words."""
    pairs = {}
    for word in text.split(" "):
        key, sep, value = word.partition("=")
        if not sep or not key.isidentifier():
            return None
        pairs[key] = value
    return pairs if "event" in pairs else None


class KeyValueFormatter(logging.Formatter):
    def __init__(self, log_ip: str = "truncate") -> None:
        super().__init__()
        self._log_ip = log_ip

    def format(self, record: logging.LogRecord) -> str:
        pairs = _pairs(record, self._log_ip)
        return " ".join(f"{key}={_kv_value(value)}" for key, value in pairs.items())


class JsonFormatter(logging.Formatter):
    def __init__(self, log_ip: str = "truncate") -> None:
        super().__init__()
        self._log_ip = log_ip

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_pairs(record, self._log_ip), default=str, ensure_ascii=False)


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
