"""Validation of what browsers send over the signaling WebSocket (docs/protocol.md).

Everything from the socket is untrusted: each message is parsed into a small, typed form or
refused with a ``BadMessage`` whose text is safe to send back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from signaling.http_errors import parse_json

__all__ = ["MAX_E2EE_BYTES", "MAX_SDP_BYTES", "BadMessage", "Message", "parse_message"]

PROTOCOL_VERSION = 1
MAX_SDP_BYTES = 32 * 1024
MAX_CANDIDATE_BYTES = 1024
MAX_E2EE_BYTES = 4 * 1024
MAX_TOKEN_CHARS = 128


class BadMessage(Exception):
    """The message cannot be used; ``str()`` says why, for the sender."""


@dataclass(frozen=True)
class Message:
    type: str
    appointment: int | None = None
    invite: str | None = None
    sdp: str | None = None
    candidate: str | None = None
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    payload: dict[str, Any] | None = None


def parse_message(text: str) -> Message:
    try:
        data = parse_json(text)  # bounded nesting: a payload is passed on with json.dumps
    except ValueError as exc:
        raise BadMessage(str(exc)) from None
    if not isinstance(data, dict):
        raise BadMessage("a message is a JSON object")
    if data.get("v") != PROTOCOL_VERSION:
        raise BadMessage(f"unsupported protocol version; this server speaks v={PROTOCOL_VERSION}")
    kind = data.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise BadMessage("unknown message type")
    return parser(data)


def _join(data: dict[str, Any]) -> Message:
    appointment = data.get("appointment")
    invite = data.get("invite")
    if (appointment is None) == (invite is None):
        raise BadMessage("join names either an appointment or an invite")
    if appointment is not None and (
        not isinstance(appointment, int) or isinstance(appointment, bool) or appointment <= 0
    ):
        raise BadMessage("appointment must be a positive integer")
    if invite is not None and (
        not isinstance(invite, str) or not 0 < len(invite) <= MAX_TOKEN_CHARS
    ):
        raise BadMessage("invite must be the link's token")
    return Message("join", appointment=appointment, invite=invite)


def _sdp(data: dict[str, Any]) -> Message:
    sdp = data.get("sdp")
    if not isinstance(sdp, str) or not sdp:
        raise BadMessage("sdp must be a non-empty string")
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise BadMessage(f"sdp larger than {MAX_SDP_BYTES} bytes")
    return Message(data["type"], sdp=sdp)


def _candidate(data: dict[str, Any]) -> Message:
    candidate = data.get("candidate")
    mid = data.get("sdpMid")
    index = data.get("sdpMLineIndex")
    if candidate is not None and (
        not isinstance(candidate, str) or len(candidate) > MAX_CANDIDATE_BYTES
    ):
        raise BadMessage("candidate must be a string (or null for the end of candidates)")
    if mid is not None and (not isinstance(mid, str) or len(mid) > 32):
        raise BadMessage("sdpMid must be a short string")
    if index is not None and (
        not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 16
    ):
        raise BadMessage("sdpMLineIndex must be a small integer")
    return Message("candidate", candidate=candidate or None, sdp_mid=mid, sdp_mline_index=index)


def _e2ee(data: dict[str, Any]) -> Message:
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise BadMessage("payload must be an object")
    if len(json.dumps(payload)) > MAX_E2EE_BYTES:
        raise BadMessage(f"payload larger than {MAX_E2EE_BYTES} bytes")
    return Message("e2ee", payload=payload)


def _bare(data: dict[str, Any]) -> Message:
    return Message(data["type"])


_PARSERS = {
    "join": _join,
    "offer": _sdp,
    "reconnect": _sdp,
    "candidate": _candidate,
    "e2ee": _e2ee,
    "leave": _bare,
    "end": _bare,
    "watch": _bare,
}
