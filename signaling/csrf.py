"""Cross-site request forgery checks for cookie-authenticated, state-changing requests.

Two independent checks: the `Origin` header, when the browser sends one, must be our public
origin; and the request must carry the session's CSRF token in `X-CSRF-Token`, which a page on
another site cannot read. SameSite=Strict cookies are a third layer, but not every browser or
proxy setup honours them, so they are not relied on alone.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from aiohttp import web

from signaling.http_errors import ApiError

__all__ = ["CSRF_HEADER", "check_csrf_token", "check_origin", "origin_of"]

CSRF_HEADER = "X-CSRF-Token"

STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def origin_of(url: str) -> str:
    """scheme://host[:port] of `url`, as browsers write it in `Origin` (default ports omitted)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_origin(request: web.Request, public_origin: str) -> None:
    """Refuse a request whose `Origin` is present and is not ours. No header is allowed: non-browser
    clients and some same-origin requests send none."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() != public_origin:
        raise ApiError(403, "forbidden", "Cross-origin request refused")


def check_csrf_token(request: web.Request, expected: str) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode("utf-8"), expected.encode("utf-8")):
        raise ApiError(403, "csrf_failed", f"Missing or wrong {CSRF_HEADER} header")
