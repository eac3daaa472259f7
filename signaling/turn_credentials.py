"""ICE servers for one participant, with short-lived TURN credentials (coturn's REST scheme).

coturn's ``use-auth-secret`` accepts a username ``<expiry unix time>:<random>`` whose password is
base64(HMAC-SHA1(secret, username)). The server never stores these; coturn recomputes them. The
random part keeps two participants' credentials apart without naming either of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

from signaling.config import MediaConfig

__all__ = ["ice_servers_for_participant", "turn_password"]


def turn_password(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def ice_servers_for_participant(
    media: MediaConfig, now: float | None = None
) -> list[dict[str, Any]]:
    """The configured ICE servers as RTCPeerConnection wants them. TURN entries without fixed
    credentials get fresh REST credentials when ``media.turn_secret`` is set."""
    now = time.time() if now is None else now
    servers: list[dict[str, Any]] = []
    for server in media.ice_servers:
        entry: dict[str, Any] = {"urls": list(server.urls)}
        is_turn = any(url.startswith(("turn:", "turns:")) for url in server.urls)
        if server.username is not None:
            entry["username"] = server.username
            entry["credential"] = server.credential or ""
        elif is_turn and media.turn_secret:
            username = f"{int(now) + media.turn_credential_ttl_seconds}:{secrets.token_hex(8)}"
            entry["username"] = username
            entry["credential"] = turn_password(media.turn_secret, username)
        elif is_turn:
            continue  # a TURN server without credentials would only make the browser fail slowly
        servers.append(entry)
    return servers
