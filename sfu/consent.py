"""ICE consent freshness (RFC 7675) that survives a busy peer or a busy relay.

aioice's own check sends one Binding request every ~5 s *without retransmission*, waits 0.5 s,
and closes the connection after six such checks failed in a row. A peer whose answer takes longer
than 0.5 s -- a browser tab in the background, a phone on a congested uplink, a relay whose event
loop is behind under overload, one lost datagram in each of six checks -- loses its call although
it never withdrew consent. Under the outside load test (issue #17) every relay leg died this way
within a minute while Janus, which does not expire consent by default, kept all of them.

RFC 7675 asks for something else: consent *expires* 30 s after the last authenticated response
(section 5.1), and the checks in between are ordinary STUN transactions, which retransmit
(RFC 8489 section 6.2.1). libnice does the same (keepalive requests with their usual
retransmissions, consent lost only when they stay unanswered). So here each check retransmits
(0.5 s, doubling) and a check that fails only counts once 30 s have passed without any answer;
consent is then lost, the connection closes and the leg fails with reason "consent".
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aioice.ice
from aioice import stun

__all__ = [
    "CHECK_INTERVAL",
    "CONSENT_LIFETIME",
    "consent_expired",
    "keep_consent_fresh",
]

# RFC 7675 section 5.1: a check every 5 s on average, randomised 0.8-1.2x against bursts.
CHECK_INTERVAL = 5.0  # seconds
# RFC 7675 section 5.1: consent expires 30 s after the last authenticated response.
CONSENT_LIFETIME = 30.0  # seconds
# Each check's retransmissions (RTO 0.5 s, doubling): sent at 0, 0.5, 1.5, 3.5 s, given up at 7.5 s
# at the latest (the consent deadline cuts it shorter).
RETRANSMISSIONS = 3

_EXPIRED = "_sprechzimmer_consent_expired"


def consent_expired(connection: aioice.ice.Connection) -> bool:
    """Whether ``connection`` was closed because the peer's consent expired."""
    return bool(getattr(connection, _EXPIRED, False))


def keep_consent_fresh(
    connection: aioice.ice.Connection, clock: Callable[[], float] = time.monotonic
) -> Callable[[], Coroutine[Any, Any, None]]:
    """A replacement for ``connection.query_consent``: aioice starts it once connected."""

    async def query_consent() -> None:
        assert connection.remote_password is not None  # set before aioice starts the checks
        integrity_key = connection.remote_password.encode("utf8")
        last_answer = clock()
        while True:
            await asyncio.sleep(CHECK_INTERVAL * (0.8 + 0.4 * random.random()))
            for pair in list(connection._nominated.values()):
                left = last_answer + CONSENT_LIFETIME - clock()
                if left <= 0:
                    break
                request = connection.build_request(pair, nominate=False)
                try:
                    await asyncio.wait_for(
                        pair.protocol.request(
                            request,
                            pair.remote_addr,
                            integrity_key=integrity_key,
                            retransmissions=RETRANSMISSIONS,
                        ),
                        timeout=left,
                    )
                except (TimeoutError, stun.TransactionError):
                    continue  # not yet lost: only the lifetime decides
                last_answer = clock()
            if clock() - last_answer >= CONSENT_LIFETIME:
                setattr(connection, _EXPIRED, True)
                # aioice's close() cancels this very task unless it is unset first
                connection._query_consent_task = None
                await connection.close()
                return

    return query_consent
