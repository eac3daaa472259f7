"""The media relay: forwards RTP between the two legs of a room without decoding.

``signaling`` drives it through this small API and nothing else:

- ``Relay(RelayConfig)`` -- ``create_room()``, ``snapshot()``, ``close()``.
- ``Room`` -- ``connect(seat, offer_sdp) -> answer_sdp`` (a second call for the same seat replaces
  its leg: how a browser reconnects), ``add_ice_candidate(...)``, ``disconnect(seat)``,
  ``close()``, ``stats()``, and ``on_leg_state(seat, state)`` for connection state changes.
  At most two seats; a third raises ``RoomFull``.
- What the relay reports travels as frozen values, copied when asked: ``RelaySnapshot`` (rooms,
  totals since start, the latency histogram) holds ``RoomSnapshot``, ``LegStats``,
  ``ForwardingCounts`` and ``LatencySnapshot``.
"""

from .config import RelayConfig
from .errors import InvalidOffer, PortsExhausted, RelayError, RelayFull, RoomClosed, RoomFull
from .relay import Relay
from .room import Room
from .snapshot import ForwardingCounts, LatencySnapshot, LegStats, RelaySnapshot, RoomSnapshot

__all__ = [
    "ForwardingCounts",
    "InvalidOffer",
    "LatencySnapshot",
    "LegStats",
    "PortsExhausted",
    "Relay",
    "RelayConfig",
    "RelayError",
    "RelayFull",
    "RelaySnapshot",
    "Room",
    "RoomClosed",
    "RoomFull",
    "RoomSnapshot",
]
