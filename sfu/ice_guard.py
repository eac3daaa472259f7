"""The gate in front of every ICE socket: only a leg's authenticated peer gets past it.

Anyone who knows the relay's UDP range can send to a leg's socket. Before the candidate pair is
selected, aioice hands every datagram that does not parse as STUN to aiortc's DTLS reader, and
answers every STUN request, authenticated or not, with an error. So a single empty datagram
killed the DTLS reader (``IndexError`` in ``_recv_next``), a stranger's ClientHello or alert
failed the handshake, and a 20-byte request earned a 48-byte answer (amplification).

``GuardedStunProtocol`` does what real ICE agents do (libnice drops data "not from a known
candidate", Pion's "unknown remote address"), from the socket's first datagram on:

- RFC 7983 demultiplexing: first byte 0-3 is STUN, 20-63 DTLS, 128-191 SRTP; everything else,
  including an empty datagram, is dropped.
- A STUN request passes only if it is a Binding request whose USERNAME is
  "<local ufrag>:<remote ufrag>" (the remote half once known, RFC 8445 section 7.3) and whose
  MESSAGE-INTEGRITY holds with the local password. Anything else is dropped silently: no error
  response to an unauthenticated request, so nothing to amplify.
- A STUN response passes only for a transaction this socket started (aioice then checks its
  integrity); other responses and indications are dropped.
- DTLS and SRTP pass only from an address that proved it holds the ICE credentials for this
  leg: it sent an authenticated request, or answered our check with an authenticated response.

Only aioice's public API is used here (``StunProtocol``, its ``transactions`` and ``receiver``,
``Connection.local_username``/``local_password``/``remote_username``/``remote_password``,
``request_received`` and ``data_received``). ``aiortc_glue`` installs the protocol: the relay's
gatherer creates it for every leg socket, and ``aiortc_glue.guard_peer_connection`` gathers any
other peer connection (the tests' peers) the same way.
"""

from __future__ import annotations

import socket
from typing import Any

import aioice.ice
from aioice import stun

from .rtp import (
    DTLS_FIRST_MAX,
    DTLS_FIRST_MIN,
    SRTP_FIRST_MAX,
    SRTP_FIRST_MIN,
    STUN_FIRST_MAX,
)

__all__ = ["MAX_CHECKED_ADDRESSES", "GuardedStunProtocol", "authenticated_request"]

# Addresses proven per socket. Only a holder of the ICE password can add one (a browser has a
# handful of candidates), so the bound only matters against a participant gone rogue.
MAX_CHECKED_ADDRESSES = 32


class GuardedStunProtocol(aioice.ice.StunProtocol):
    """aioice's protocol for one local UDP socket, with strangers' datagrams dropped at the door."""

    def __init__(self, receiver: aioice.ice.Connection) -> None:
        super().__init__(receiver)
        # insertion-ordered, so the oldest proof is the first forgotten
        self.checked: dict[tuple[str, int], None] = {}
        self.dropped = 0
        self.relay_socket: socket.socket | None = None  # set by aiortc_glue for the relay's legs

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        if not data or isinstance(data, str):  # aioice's signature allows str; UDP never does
            self.dropped += 1
            return
        addr = (addr[0], addr[1])  # an IPv6 four-tuple as aioice keeps it
        first = data[0]
        if first <= STUN_FIRST_MAX:
            self._stun_received(data, addr)
        elif (
            DTLS_FIRST_MIN <= first <= DTLS_FIRST_MAX or SRTP_FIRST_MIN <= first <= SRTP_FIRST_MAX
        ) and addr in self.checked:
            self.receiver.data_received(data, self.local_candidate.component)
        else:
            self.dropped += 1

    def _stun_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            message = stun.parse_message(data)
        except Exception:
            # ValueError for malformed STUN; anything else would be a parser bug, which a
            # stranger must not be able to raise into the event loop either
            self.dropped += 1
            return
        connection: aioice.ice.Connection = self.receiver
        if message.message_class == stun.Class.REQUEST:
            if not authenticated_request(message, connection):
                self.dropped += 1
                return
            self._checked(addr)
            connection.request_received(message, addr, self)
        elif message.message_class in (stun.Class.RESPONSE, stun.Class.ERROR):
            transaction = self.transactions.get(message.transaction_id)
            if transaction is None:
                self.dropped += 1
                return
            password = connection.remote_password
            if (
                message.message_class == stun.Class.RESPONSE
                and password is not None
                and message.check_message_integrity(password.encode("utf8"))
            ):
                self._checked(addr)  # our connectivity check succeeded with this address
            transaction.response_received(message, addr)
        else:
            self.dropped += 1  # indications: ICE has no use for them on a host candidate

    def _checked(self, addr: tuple[str, int]) -> None:
        if addr in self.checked:
            return
        if len(self.checked) >= MAX_CHECKED_ADDRESSES:
            del self.checked[next(iter(self.checked))]
        self.checked[addr] = None


def authenticated_request(message: stun.Message, connection: aioice.ice.Connection) -> bool:
    """Whether a STUN request is a Binding request for this connection, signed with its password.

    The same test aioice makes before answering, made before it can answer with an error.
    """
    if message.message_method != stun.Method.BINDING:
        return False
    username = message.attributes.get("USERNAME")
    if not isinstance(username, str) or "MESSAGE-INTEGRITY" not in message.attributes:
        return False
    local, colon, remote = username.partition(":")
    if colon != ":" or local != connection.local_username:
        return False
    if connection.remote_username is not None and remote != connection.remote_username:
        return False
    return message.check_message_integrity(connection.local_password.encode("utf8"))
