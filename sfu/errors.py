"""Errors the relay's API raises; each carries a message safe to show a user."""


class RelayError(Exception):
    """Base class of the relay's errors."""


class InvalidOffer(RelayError):
    """The browser's SDP offer or candidate cannot be used."""


class RoomFull(RelayError):
    """A room has two seats; a third participant is refused."""


class RelayFull(RelayError):
    """The relay hosts as many rooms as it is configured to."""


class RoomClosed(RelayError):
    """The room was closed; nothing can join it any more."""


class PortsExhausted(RelayError):
    """No UDP port of the configured range is free: the relay cannot take another leg."""
