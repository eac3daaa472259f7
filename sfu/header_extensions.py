"""RTP header-extension ids differ per leg: rewrite them from one leg's numbering to the other's.

Each browser picks its own extension ids in its offer (Chrome and Firefox number them
differently), so the relay keeps one ``ExtensionRewriter`` per direction and kind. Extensions the
receiving leg did not negotiate are dropped; the ``mid`` extension carries the *receiving* leg's
mid value, because browsers demultiplex on it.
"""

from __future__ import annotations

from collections.abc import Mapping

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"

ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE_MASK = 0xFFF0
TWO_BYTE_PROFILE = 0x1000


def parse_elements(profile: int, block: bytes) -> list[tuple[int, bytes]] | None:
    """Split an extension block into (id, value) elements; None when the block is malformed."""
    elements: list[tuple[int, bytes]] = []
    pos = 0
    end = len(block)
    if profile == ONE_BYTE_PROFILE:
        while pos < end:
            byte = block[pos]
            if byte == 0:  # padding
                pos += 1
                continue
            ext_id = byte >> 4
            length = (byte & 0x0F) + 1
            if ext_id == 15:  # RFC 8285: id 15 means "stop parsing"
                break
            pos += 1
            if pos + length > end:
                return None
            elements.append((ext_id, block[pos : pos + length]))
            pos += length
    elif profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE:
        while pos < end:
            ext_id = block[pos]
            if ext_id == 0:
                pos += 1
                continue
            if pos + 1 >= end:
                return None
            length = block[pos + 1]
            pos += 2
            if pos + length > end:
                return None
            elements.append((ext_id, block[pos : pos + length]))
            pos += length
    else:
        return None
    return elements


def build_block(elements: list[tuple[int, bytes]]) -> tuple[int, bytes]:
    """Serialise elements, one-byte form when every element fits it; padded to 32 bits."""
    one_byte = all(1 <= i <= 14 and 1 <= len(v) <= 16 for i, v in elements)
    out = bytearray()
    if one_byte:
        for ext_id, value in elements:
            out.append((ext_id << 4) | (len(value) - 1))
            out += value
        profile = ONE_BYTE_PROFILE
    else:
        for ext_id, value in elements:
            out.append(ext_id)
            out.append(len(value))
            out += value
        profile = TWO_BYTE_PROFILE
    out += b"\x00" * (-len(out) % 4)
    return profile, bytes(out)


class ExtensionRewriter:
    """Translates one direction's header extensions for one media kind.

    ``identity`` is true when the source block can be forwarded byte for byte, which is the
    common case of two legs from the same browser; the hot path then skips the rewrite.
    """

    __slots__ = ("_id_map", "_mid_id", "_mid_value", "_nibbles", "identity")

    def __init__(
        self,
        source_ids: Mapping[str, int],
        sink_ids: Mapping[str, int],
        source_mid: str | None,
        sink_mid: str | None,
    ) -> None:
        # source id -> sink id, for every extension both legs negotiated
        self._id_map: dict[int, int] = {
            source_id: sink_ids[uri] for uri, source_id in source_ids.items() if uri in sink_ids
        }
        self._mid_id = source_ids.get(MID_URI)
        self._mid_value = sink_mid.encode() if sink_mid is not None else None
        # one-byte form: source id -> sink id, -1 where the element would have to go
        self._nibbles = [-1] * 16
        for source_id, sink_id in self._id_map.items():
            if 1 <= source_id <= 14 and 1 <= sink_id <= 14:
                self._nibbles[source_id] = sink_id
        same_ids = all(sink_ids.get(uri) == i for uri, i in source_ids.items())
        self.identity = same_ids and (self._mid_id is None or source_mid == sink_mid)

    def rewrite_in_place(self, buf: bytearray, start: int, end: int) -> bool:
        """Patch a one-byte-form block in ``buf[start:end]`` where nothing changes length.

        The common case -- every element maps, the mid value is as long as the sink's -- costs
        a few byte writes instead of a rebuilt block. False means "use ``rewrite``" (buf may be
        partly patched then; the caller rebuilds from the original packet).
        """
        nibbles = self._nibbles
        mid_id = self._mid_id
        pos = start
        while pos < end:
            byte = buf[pos]
            if byte == 0:
                pos += 1
                continue
            ext_id = byte >> 4
            if ext_id == 15:
                return True
            length = (byte & 0x0F) + 1
            sink_id = nibbles[ext_id]
            if sink_id < 0 or pos + 1 + length > end:
                return False
            if ext_id == mid_id:
                value = self._mid_value
                if value is None or len(value) != length:
                    return False
                buf[pos + 1 : pos + 1 + length] = value
            buf[pos] = (sink_id << 4) | (byte & 0x0F)
            pos += 1 + length
        return True

    def rewrite(self, profile: int, block: bytes) -> tuple[int, bytes] | None:
        """Return (profile, block) for the sink leg; block may be empty. None if malformed."""
        elements = parse_elements(profile, block)
        if elements is None:
            return None
        out: list[tuple[int, bytes]] = []
        id_map = self._id_map
        for ext_id, value in elements:
            sink_id = id_map.get(ext_id)
            if sink_id is None:
                continue
            if ext_id == self._mid_id:
                if not self._mid_value:
                    continue
                value = self._mid_value
            out.append((sink_id, value))
        if not out:
            return profile, b""
        return build_block(out)
