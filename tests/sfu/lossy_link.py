"""A bad network between a peer and the relay, in user space: loss, delay and jitter.

The kernel here has no netem qdisc, so a UDP proxy on 127.0.0.1 plays the network: the peer is
told to reach the relay at the proxy's port (the answer's candidates are rewritten), and each
datagram in either direction is dropped with probability ``loss`` or delivered after
``delay ± jitter``. Jitter reorders packets, as a real network does.
"""

from __future__ import annotations

import asyncio
import random
import re


class LossyLink:
    def __init__(self, loss: float, delay: float = 0.0, jitter: float = 0.0, seed: int = 7) -> None:
        self.loss = loss
        self.delay = delay
        self.jitter = jitter
        self.dropped = 0
        self.delivered = 0
        self._random = random.Random(seed)
        self._relay: tuple[str, int] | None = None
        self._peer: tuple[str, int] | None = None
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self, relay_addr: tuple[str, int]) -> tuple[str, int]:
        """Listen on 127.0.0.1; returns the address the peer should use for the relay."""
        self._relay = relay_addr
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=("127.0.0.1", 0)
        )
        return self._transport.get_extra_info("sockname")[:2]

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _received(self, data: bytes, addr: tuple[str, int]) -> None:
        if addr == self._relay:
            target = self._peer
        else:
            self._peer = addr  # the peer's own socket; one peer per link
            target = self._relay
        if target is None:
            return
        if self._random.random() < self.loss:
            self.dropped += 1
            return
        wait = max(self.delay + self._random.uniform(-self.jitter, self.jitter), 0.0)
        loop = asyncio.get_running_loop()
        loop.call_later(wait, self._deliver, data, target)

    def _deliver(self, data: bytes, target: tuple[str, int]) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, target)
            self.delivered += 1


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, link: LossyLink) -> None:
        self._link = link

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._link._received(data, addr)


def relay_address(answer_sdp: str) -> tuple[str, int]:
    match = re.search(r"^a=candidate:\S+ \d udp \d+ (\S+) (\d+) typ host", answer_sdp, re.M)
    assert match, "no host candidate in the answer"
    return match.group(1), int(match.group(2))


def through(answer_sdp: str, proxy: tuple[str, int]) -> str:
    """The answer with every candidate pointing at the proxy instead of the relay."""
    host, port = relay_address(answer_sdp)
    return answer_sdp.replace(f" {host} {port} typ", f" {proxy[0]} {proxy[1]} typ")


def without_candidates(offer_sdp: str) -> str:
    """The peer's offer without its candidates, so the relay can reach it only via the proxy
    (it learns the proxy's address from the peer's connectivity checks)."""
    return re.sub(r"^a=(candidate:.*|end-of-candidates)\r?\n", "", offer_sdp, flags=re.M)
