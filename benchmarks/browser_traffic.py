"""Traffic shaped like a browser's, for ``relay_vs_janus.py --traffic browser``.

``relay_load.py``'s generator sends evenly spaced packets of one size. Browsers do not:

- **video comes in frames**: 30 frames/s (x the rate multiplier), each a burst sent at once with
  one RTP timestamp and the marker bit on its last packet: delta frames of 1-5 packets, a
  keyframe of 30-60 packets every 2-4 s (random phase per peer); the last packet of a frame is
  shorter (200-1100 bytes of payload);
- **audio**: 50 packets/s of 100 bytes;
- **RTCP**: every second a receiver report (RR) with a REMB; every 50 ms a transport-cc feedback
  packet, both about the video stream the peer receives (its SSRC is learnt from the first
  window's packets);
- **NACKs under injected loss**: the receiving peer treats ``--injected-loss`` of the video
  packets that reach it as lost, sends a NACK for each at once, and counts the retransmission
  (RTX, OSN first, or a plain resend) when it comes;
- **differing extension ids** between a room's two peers (``relay_load.py``'s default: seat b's
  ids shifted by 7), so the relay rewrites every packet's extension block.

Each media packet still carries ``relay_load.PAYLOAD_TAG`` (its number in the window and the
window's number), so loss and delay are measured as for the even traffic.
"""

from __future__ import annotations

import random
import re
import struct
from dataclasses import dataclass

from relay_load import (
    AUDIO_FILL,
    AUDIO_PPS,
    PAYLOAD_TAG,
    VIDEO_FILL,
    Peer,
    Schedule,
    extension_block,
)

from sfu.rtcp import ReportBlock, build_nack, build_receiver_report, build_remb

FRAMES_PER_SECOND = 30
DELTA_PACKETS = (1, 5)
KEYFRAME_PACKETS = (30, 60)
KEYFRAME_EVERY = (2.0, 4.0)  # seconds
RR_EVERY = 1.0
TRANSPORT_CC_EVERY = 0.05
REMB_BITRATE = 1_500_000

_RTCP_HEADER = struct.Struct("!BBH")


def rtx_payload_type(offer: str) -> int | None:
    """The RTX payload type the offer pairs with its VP8 (apt=), if any."""
    video = offer[offer.index("m=video") :]
    vp8 = int(re.search(r"(?m)^a=rtpmap:(\d+) VP8/", video).group(1))
    match = re.search(rf"(?m)^a=fmtp:(\d+) apt={vp8}\r?$", video)
    return int(match.group(1)) if match else None


@dataclass
class Entry:
    time: float
    peer: int
    kind: str  # "video", "audio" or "rtcp"
    marker: bool = False
    size: int = 0
    frame: int = 0  # video: the frame's number, for its RTP timestamp
    rtcp: str = ""  # "rr" or "tcc"


def receiver_report(sender_ssrc: int, media_ssrc: int, highest_seq: int) -> bytes:
    """RR (one report block) + REMB, a compound packet as browsers send every second or so."""
    block = ReportBlock(media_ssrc, 0, 0, highest_seq, jitter=10, last_sr=0, delay_since_last_sr=0)
    rr = build_receiver_report(sender_ssrc, [block])
    return rr + build_remb(sender_ssrc, REMB_BITRATE, [media_ssrc])


def transport_cc(sender_ssrc: int, media_ssrc: int, base_seq: int, count: int) -> bytes:
    """Transport-wide CC feedback: ``count`` packets received, one run-length chunk, small deltas
    (the shape libwebrtc sends every ~50 ms)."""
    count = max(1, min(count, 0x1FFF))
    body = struct.pack(
        "!IIHHIH", sender_ssrc, media_ssrc, base_seq & 0xFFFF, count, 0, 0x2000 | count
    )
    body += bytes([4]) * count  # one small delta per packet (status "small delta")
    body += bytes(-len(body) % 4)
    return _RTCP_HEADER.pack(0x8F, 205, len(body) // 4) + body


def nack(sender_ssrc: int, media_ssrc: int, seq: int) -> bytes:
    return build_nack(sender_ssrc, media_ssrc, [seq])


def build_browser_schedule(
    peers: list[Peer], multiplier: float, warmup: float, measure: float, step: int
) -> Schedule:
    """Every packet of the window in send order; RTCP entries are plain (protected when sent)."""
    duration = warmup + measure
    entries: list[Entry] = []
    for index, _peer in enumerate(peers):
        rng = random.Random(step * 100_003 + index)
        frame_interval = 1.0 / (FRAMES_PER_SECOND * multiplier)
        t = rng.random() * frame_interval
        next_key = rng.uniform(0, KEYFRAME_EVERY[1])
        frame = 0
        while t < duration:
            if t >= next_key:
                count = rng.randint(*KEYFRAME_PACKETS)
                next_key = t + rng.uniform(*KEYFRAME_EVERY)
            else:
                count = rng.randint(*DELTA_PACKETS)
            for n in range(count):
                last = n == count - 1
                size = rng.randint(200, 1100) if last else 1100
                entries.append(Entry(t, index, "video", marker=last, size=size, frame=frame))
            frame += 1
            t += frame_interval
        interval = 1.0 / (AUDIO_PPS * multiplier)
        t = rng.random() * interval
        while t < duration:
            entries.append(Entry(t, index, "audio"))
            t += interval
        t = rng.random() * TRANSPORT_CC_EVERY
        while t < duration:
            entries.append(Entry(t, index, "rtcp", rtcp="tcc"))
            t += TRANSPORT_CC_EVERY
        t = rng.random() * RR_EVERY
        while t < duration:
            entries.append(Entry(t, index, "rtcp", rtcp="rr"))
            t += RR_EVERY
    entries.sort(key=lambda e: (e.time, e.peer))
    times, owners, packets = [], [], []
    measure_from = len(entries)
    for number, entry in enumerate(entries):
        peer = peers[entry.peer]
        if entry.time >= warmup and measure_from == len(entries):
            measure_from = number
        times.append(entry.time)
        owners.append(peer)
        if entry.kind == "rtcp":
            packets.append(rtcp_for(peer, entry.rtcp))
        else:
            packets.append(media_packet(peer, entry, number, step))
    return Schedule(times, owners, packets, measure_from, len(entries))


def media_packet(peer: Peer, entry: Entry, number: int, step: int) -> bytes:
    plan = peer.plans[entry.kind]
    plan.seq = (plan.seq + 1) & 0xFFFF
    if entry.kind == "video":
        ts = (entry.frame * 3000 + plan.ts) & 0xFFFFFFFF  # 90 kHz / 30 fps
        fill = VIDEO_FILL[: entry.size - PAYLOAD_TAG.size]
    else:
        plan.ts = (plan.ts + 960) & 0xFFFFFFFF
        ts, fill = plan.ts, AUDIO_FILL
    second = plan.payload_type | (0x80 if entry.marker or entry.kind == "audio" else 0)
    header = struct.pack("!BBHII", 0x90, second, plan.seq, ts, plan.ssrc)
    body = extension_block(plan, entry.kind, number) + PAYLOAD_TAG.pack(number, step) + fill
    return peer.tx.protect(header + body)


def rtcp_for(peer: Peer, what: str) -> bytes:
    """Plain RTCP; marked by a leading zero byte so the sender knows to protect it at send time
    (SRTCP indexes must rise in send order, and NACKs are made while the window runs)."""
    sender = peer.plans["video"].ssrc
    media = getattr(peer, "seen_video_ssrc", 0)
    highest = getattr(peer, "highest_seq", 0)
    if what == "rr":
        return b"\x00" + receiver_report(sender, media, highest)
    return b"\x00" + transport_cc(sender, media, highest, 8)
