"""JSON errors for everything under /api/: one shape, stable codes, never a traceback.

Every error body is ``{"error": {"code": "...", "message": "..."}}``. Clients branch on `code`
(stable, documented in docs/api.md); `message` is for humans and may change.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from signaling.logs import LOGGER_NAME, log_event
from signaling.storage import StorageFailure, StorageFull, StorageUnavailable

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "ApiError",
    "api_error_middleware",
    "error_response",
    "log_request_error",
    "parse_json",
    "read_json",
    "route_template",
    "storage_failure_status",
]

# Appointment requests are a few hundred bytes; a 2000-character note is at most 8 KB as UTF-8.
MAX_BODY_BYTES = 64 * 1024

# Our bodies and messages are at most four levels deep (an e2ee payload's key inside an object
# inside the message). Python's parser recurses per level and gives up near 1000 with
# RecursionError; a value that parsed just under that still breaks json.dumps called from a
# deeper stack, e.g. when a WebSocket payload is passed on. 32 leaves room and stays far below.
MAX_JSON_DEPTH = 32

API_PREFIX = "/api/"

logger = logging.getLogger(LOGGER_NAME)

# Codes for errors aiohttp raises itself (no route, wrong method, body too large).
_STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


# The storage's "not now" failures: nothing was written -- every write is one transaction -- so
# the client may simply retry. Any other `StorageFailure` is a 500 like any crash.
_STORAGE_ANSWERS: dict[type[StorageFailure], tuple[int, str, str]] = {
    StorageUnavailable: (
        503,
        "storage_unavailable",
        "The database is busy; nothing was saved. Try again shortly.",
    ),
    StorageFull: (507, "storage_full", "The server's storage is full; nothing was saved."),
}
STORAGE_RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    """Raise from a handler to answer with a JSON error."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


@web.middleware
async def api_error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn `ApiError`, aiohttp's own HTTP errors and crashes under /api/ into JSON errors."""
    if not request.path.startswith(API_PREFIX):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, "error")
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return error_response(exc.status, code, exc.reason, headers)
    except asyncio.CancelledError:
        raise
    except StorageFailure as exc:
        answer = storage_failure_status(exc)
        log_request_error(request, exc)
        if answer is None:
            return error_response(500, "internal_error", "Internal server error")
        status, code, message = answer
        return error_response(
            status, code, message, {"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)}
        )
    except Exception as exc:
        log_request_error(request, exc)
        return error_response(500, "internal_error", "Internal server error")


def storage_failure_status(exc: StorageFailure) -> tuple[int, str, str] | None:
    """Status, code and message for a storage failure the client may retry; None for the rest."""
    for kind, answer in _STORAGE_ANSWERS.items():
        if isinstance(exc, kind):
            return answer
    return None


def log_request_error(request: web.Request, exc: Exception) -> None:
    """The one log line of a request that failed on our side, for pages, /api/ and /ws alike.

    It names the route's template, never the path (paths carry invite tokens and usernames;
    routes are not named, so the template is what identifies them), and the error's type -- or
    for a storage failure the backend's reason (``SQLITE_BUSY``) -- never its text, which can
    quote request data or SQL."""
    if isinstance(exc, StorageFailure):
        answer = storage_failure_status(exc)
        event, error = (answer[1] if answer else "storage_error"), exc.reason
    else:
        event, error = "unhandled_error", type(exc).__name__
    log_event(
        logger,
        event,
        logging.ERROR,
        method=request.method,
        path=route_template(request),
        error=error,
    )


def route_template(request: web.Request) -> str:
    """The matched route's template ("/j/{token}") for logs: the path itself carries invite
    tokens and usernames. "-" when no route matched."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "-"


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or an `ApiError` (415, 413 or 400)."""
    if request.content_type != "application/json":
        # Requiring JSON also means a cross-site HTML form cannot post here: browsers only send
        # application/json cross-origin after a CORS preflight, which we never allow.
        raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(
            413, "body_too_large", f"Request body must not exceed {MAX_BODY_BYTES} bytes"
        )
    try:
        # The application's client_max_size also caps chunked bodies without a Content-Length.
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(
            413, "body_too_large", f"Request body must not exceed {MAX_BODY_BYTES} bytes"
        ) from None
    try:
        body = parse_json(raw)
    except ValueError as exc:
        raise ApiError(400, "invalid_request", f"Request body is {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "Request body must be a JSON object")
    return body


def parse_json(text: str | bytes) -> Any:
    """Parse untrusted JSON, nested at most `MAX_JSON_DEPTH` levels; else `ValueError` whose text
    ("not valid JSON", "nested too deeply") is safe to send back."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError("not valid JSON") from None
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise ValueError(f"nested too deeply (at most {MAX_JSON_DEPTH} levels)")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    # Iterative on purpose: a recursive walk would hit the very limit this guards against.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
