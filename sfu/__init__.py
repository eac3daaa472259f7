"""The media relay: forwards RTP between the two legs of a room without decoding.

``signaling`` drives it through this small API and nothing else:

- ``Relay(RelayConfig)`` -- ``create_room()``, ``close()``.
- ``Room`` -- ``connect(seat, offer_sdp) -> answer_sdp`` (a second call for the same seat replaces
  its leg: how a browser reconnects), ``add_ice_candidate(...)``, ``disconnect(seat)``,
  ``close()``, ``stats()``, and ``on_leg_state(seat, state)`` for connection state changes.
  At most two seats; a third raises ``RoomFull``.
"""

from .config import RelayConfig
from .errors import InvalidOffer, PortsExhausted, RelayError, RelayFull, RoomClosed, RoomFull
from .relay import Relay
from .room import LegStats, Room

__all__ = [
    "InvalidOffer",
    "LegStats",
    "PortsExhausted",
    "Relay",
    "RelayConfig",
    "RelayError",
    "RelayFull",
    "Room",
    "RoomClosed",
    "RoomFull",
]
