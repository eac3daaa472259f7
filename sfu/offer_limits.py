"""Bounds on the values in a browser's offer, checked on the text before aiortc parses it.

aiortc's SDP parser checks some fields with ``assert`` (gone under ``python -O``, and its
message is empty) and others not at all: it accepts a 5000-character ICE ufrag, 1000
fingerprints or a candidate on port 99999999 and leaves them for aioice and the DTLS code to
trip over. Janus crashed on offers like these (CVE-2020-13898 to CVE-2020-14034). Each check
here names the field it refuses, so the browser's error message says what was wrong.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from .errors import InvalidOffer

__all__ = [
    "CandidateBudget",
    "candidate_address",
    "check_candidate",
    "check_offer_values",
    "offered_candidates",
]

MAX_PORT = 65535
MAX_PAYLOAD_TYPE = 127  # RTP's payload type is a 7-bit field (RFC 3550 section 5.1)
# RFC 8839 section 5.4: ice-ufrag 4 to 256 ice-chars, ice-pwd 22 to 256
UFRAG_CHARS = (4, 256)
PWD_CHARS = (22, 256)
_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]*")
# a browser sends one fingerprint per section; RFC 8122 allows one per hash function
MAX_FINGERPRINTS = 4
_RTP_ATTRIBUTES = ("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")
# Each remote candidate is an address the relay sends connectivity checks to: one request every
# 20 ms (aioice's Ta) with up to 6 retransmissions over 39.5 s. An offer naming 150 arbitrary
# ports made the relay send 723 packets to them in 10 s. A browser has a host, a server-reflexive
# and a relayed candidate per interface and IP version: 16 leave room for a multi-homed laptop.
MAX_REMOTE_CANDIDATES = 16
# Trickled candidate messages (duplicates and TCP ones included, which cost work but add no
# address): a browser sends its few within the first second or two of gathering.
TRICKLE_BURST = 16
TRICKLE_PER_SECOND = 4.0
# RFC 5888/8843: a mid is a token; browsers use "0", "1", ... (Chrome, Firefox, Safari).
# aiortc takes any bytes, and a NUL or a mid missing from BUNDLE made it raise AttributeError.
MAX_MID_CHARS = 32
_MID = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`{|}~]{1," + str(MAX_MID_CHARS) + "}")


def check_offer_values(offer_sdp: str) -> None:
    """Raise ``InvalidOffer`` naming the first field whose value is out of bounds."""
    fingerprints = 0
    addresses: set[tuple[str, str, int]] = set()
    mids: list[str] = []
    bundles: list[list[str]] = []
    for line in offer_sdp.splitlines():
        if line.startswith("a=mid:"):
            mids.append(_check_mid(line[len("a=mid:") :]))
        elif line.startswith("a=group:BUNDLE"):
            bundles.append(line[len("a=group:BUNDLE") :].split())
        elif line.startswith("m="):
            _check_media_line(line)
            fingerprints = 0
            addresses = set()
        elif line.startswith(_RTP_ATTRIBUTES):
            payload_type = line.split(":", 1)[1].split(" ", 1)[0]
            if not (line.startswith("a=rtcp-fb:") and payload_type == "*"):
                _check_payload_type(payload_type)
        elif line.startswith("a=candidate:"):
            check_candidate(line[2:])
            address = candidate_address(line[2:])
            if address is not None:
                addresses.add(address)
                if len(addresses) > MAX_REMOTE_CANDIDATES:  # in one section: per transport
                    raise InvalidOffer(f"more than {MAX_REMOTE_CANDIDATES} ICE candidates")
        elif line.startswith("a=ice-ufrag:"):
            _check_ice_chars("ice-ufrag", line[len("a=ice-ufrag:") :], UFRAG_CHARS)
        elif line.startswith("a=ice-pwd:"):
            _check_ice_chars("ice-pwd", line[len("a=ice-pwd:") :], PWD_CHARS)
        elif line.startswith("a=fingerprint:"):
            fingerprints += 1
            if fingerprints > MAX_FINGERPRINTS:
                raise InvalidOffer(f"more than {MAX_FINGERPRINTS} fingerprints in one section")
    _check_bundle(mids, bundles)


def check_candidate(candidate: str) -> None:
    """A candidate attribute (with or without ``candidate:``): component, priority and port."""
    bits = candidate.removeprefix("candidate:").split()
    if len(bits) < 8:
        raise InvalidOffer("malformed candidate: too few fields")
    component, priority, port = (_integer(bits[i], "candidate") for i in (1, 3, 5))
    if not 1 <= component <= 256:
        raise InvalidOffer("candidate component out of range")
    if not 1 <= priority < 2**32:
        raise InvalidOffer("candidate priority out of range")
    if not 0 <= port <= MAX_PORT:
        raise InvalidOffer("candidate port out of range")


def candidate_address(candidate: str) -> tuple[str, str, int] | None:
    """(component, host, port) of a checked UDP candidate line; None for other transports, which
    the relay never checks (it listens on UDP only). Bundled sections repeat the same ones."""
    bits = candidate.removeprefix("candidate:").split()
    if bits[2].lower() != "udp":
        return None
    return bits[1], bits[4].lower(), int(bits[5])


class CandidateBudget:
    """One leg's remote candidates: at most ``MAX_REMOTE_CANDIDATES`` distinct addresses, and
    trickled ones at ``TRICKLE_PER_SECOND`` after a burst of ``TRICKLE_BURST``."""

    def __init__(
        self, offered: set[tuple[str, str, int]], clock: Callable[[], float] = time.monotonic
    ):
        self.addresses = set(offered)
        self._clock = clock
        self._tokens = float(TRICKLE_BURST)
        self._last = clock()

    def spend(self, candidate: str) -> None:
        """Account for one trickled candidate (already ``check_candidate``-ed) or raise."""
        now = self._clock()
        self._tokens = min(TRICKLE_BURST, self._tokens + (now - self._last) * TRICKLE_PER_SECOND)
        self._last = now
        if self._tokens < 1:
            raise InvalidOffer(f"more than {TRICKLE_PER_SECOND:g} ICE candidates a second")
        self._tokens -= 1
        address = candidate_address(candidate)
        if address is None or address in self.addresses:
            return
        if len(self.addresses) >= MAX_REMOTE_CANDIDATES:
            raise InvalidOffer(f"more than {MAX_REMOTE_CANDIDATES} ICE candidates")
        self.addresses.add(address)


def offered_candidates(offer_sdp: str) -> set[tuple[str, str, int]]:
    """The distinct UDP candidate addresses of a checked offer's transport: those of the section
    BUNDLE names first. aiortc discards the other sections' transports with their candidates."""
    bundle = re.search(r"^a=group:BUNDLE +(\S+)", offer_sdp, re.M)
    found: set[tuple[str, str, int]] = set()
    mid = None
    section: set[tuple[str, str, int]] = set()
    for line in [*offer_sdp.splitlines(), "m="]:
        if line.startswith("m="):
            if bundle is None or mid == bundle.group(1):
                found |= section
            mid, section = None, set()
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:") :]
        elif line.startswith("a=candidate:"):
            address = candidate_address(line[2:])
            if address is not None:
                section.add(address)
    return found


def _check_mid(value: str) -> str:
    if not _MID.fullmatch(value):
        raise InvalidOffer(f"a=mid must be 1 to {MAX_MID_CHARS} letters, digits or token signs")
    return value


def _check_bundle(mids: list[str], bundles: list[list[str]]) -> None:
    """One BUNDLE group listing every section's mid exactly once: the relay has one transport."""
    if len(set(mids)) != len(mids):
        raise InvalidOffer("two sections share an a=mid")
    if len(bundles) > 1:
        raise InvalidOffer("more than one BUNDLE group")
    if bundles and (len(set(bundles[0])) != len(bundles[0]) or set(bundles[0]) != set(mids)):
        raise InvalidOffer("BUNDLE must list the a=mid of every section exactly once")


def _check_media_line(line: str) -> None:
    parts = line[2:].split()
    if len(parts) < 4:
        raise InvalidOffer("malformed m-line")
    kind, port, protocol, formats = parts[0], parts[1], parts[2], parts[3:]
    if not 0 <= _integer(port.split("/", 1)[0], "m-line port") <= MAX_PORT:
        raise InvalidOffer(f"{kind} m-line port out of range")
    if "RTP" not in protocol:
        return  # the data channel's formats are names, not payload types
    if len(formats) > MAX_PAYLOAD_TYPE + 1 or len(set(formats)) != len(formats):
        raise InvalidOffer(f"{kind} m-line lists more payload types than exist, or one twice")
    for payload_type in formats:
        _check_payload_type(payload_type)


def _check_payload_type(text: str) -> None:
    if not 0 <= _integer(text, "payload type") <= MAX_PAYLOAD_TYPE:
        raise InvalidOffer(f"payload type out of range (0 to {MAX_PAYLOAD_TYPE})")


def _check_ice_chars(name: str, value: str, bounds: tuple[int, int]) -> None:
    value = value.strip()
    low, high = bounds
    if not low <= len(value) <= high or not _ICE_CHARS.fullmatch(value):
        raise InvalidOffer(f"{name} must be {low} to {high} letters, digits, + or /")


def _integer(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        raise InvalidOffer(f"{what} is not a number")
    return int(text)
