"""The client's address, seen through trusted reverse proxies only."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

__all__ = ["client_address", "is_trusted"]


def client_address(request: web.Request, trusted_proxies: Sequence[str]) -> str:
    """The address that sent the request, or "" if unknown.

    `X-Forwarded-For` is believed only when the peer is a trusted proxy, and then only as far as
    the chain stays inside trusted proxies: the rightmost untrusted entry is the client. Anyone
    can put anything at the left end of that header.
    """
    peer = request.remote or ""
    if not trusted_proxies or not is_trusted(peer, trusted_proxies):
        return peer
    hops = [
        hop.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for hop in header.split(",")
    ]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted_proxies):
            return hop
    return hops[0] if hops else peer


def is_trusted(address: str, trusted_proxies: Sequence[str]) -> bool:
    """Whether `address` lies in one of the `trusted_proxies` networks."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network) for network in trusted_proxies)
