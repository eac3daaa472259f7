"""UDP ports from the operator's range, so the firewall needs to open exactly that range."""

from __future__ import annotations

import random
import socket


class NoFreePort(OSError):
    """Every port of the configured range is in use on that address."""


class PortRange:
    def __init__(self, low: int, high: int) -> None:
        self.low = low
        self.high = high
        self.exhausted = 0  # how often a bind found the range full (for metrics and alerts)

    def bind(self, address: str) -> socket.socket:
        """A non-blocking UDP socket bound to ``address`` on a free port of the range."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        size = self.high - self.low + 1
        start = random.randrange(size)  # spread legs over the range; avoids reusing hot ports
        for i in range(size):
            port = self.low + (start + i) % size
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((address, port))
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            return sock
        self.exhausted += 1
        raise NoFreePort(f"no free UDP port in {self.low}-{self.high}")
