from __future__ import annotations

import pytest

from sfu import Relay, RelayConfig
from tests.sfu.media_peers import MediaPeer, use_loopback_only

PORT_MIN, PORT_MAX = 41000, 41099


@pytest.fixture
async def relay():
    use_loopback_only()
    relay = Relay(
        RelayConfig(udp_port_min=PORT_MIN, udp_port_max=PORT_MAX, listen_addresses=("127.0.0.1",))
    )
    yield relay
    await relay.close()


@pytest.fixture
async def peers():
    """Factory for media peers that are closed after the test."""
    made: list[MediaPeer] = []

    def make(*args, **kwargs) -> MediaPeer:
        peer = MediaPeer(*args, **kwargs)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        await peer.close()


async def join(room, seat: str, peer: MediaPeer) -> str:
    answer = await room.connect(seat, await peer.offer())
    await peer.accept(answer)
    return answer
