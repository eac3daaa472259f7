"""The RTP a browser sends, as the benchmarks build it: extension URIs and the extension block.

``relay_hotpath.py`` (in process) and ``relay_load.py`` with the scripts built on it (over
sockets) send the same packets, so the relay's rewrite path sees the same work in both. The block
is serialised by the relay's own ``build_block``: one-byte form (RFC 8285), padded to 32 bits.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from sfu.header_extensions import MID_URI, build_block

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
_BLOCK_HEADER = struct.Struct("!HH")  # profile, length in 32-bit words

__all__ = ["ABS_SEND_TIME_URI", "AUDIO_LEVEL_URI", "MID_URI", "TRANSPORT_CC_URI"]


def browser_extension_block(ext_ids: Mapping[str, int], mid: str, kind: str, index: int) -> bytes:
    """Packet ``index``'s extension block: mid, abs-send-time, transport-cc (and audio level for
    audio), with the ids the sender negotiated; the varying values change per packet as a
    browser's do."""
    elements = [
        (ext_ids[MID_URI], mid.encode()),
        (ext_ids[ABS_SEND_TIME_URI], (index * 7919 & 0xFFFFFF).to_bytes(3, "big")),
        (ext_ids[TRANSPORT_CC_URI], (index & 0xFFFF).to_bytes(2, "big")),
    ]
    if kind == "audio":
        elements.append((ext_ids[AUDIO_LEVEL_URI], b"\x9e"))
    profile, block = build_block(elements)
    return _BLOCK_HEADER.pack(profile, len(block) // 4) + block
