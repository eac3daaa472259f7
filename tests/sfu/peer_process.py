"""Two media peers in a process of their own, driven over stdin/stdout (one JSON object a line).

Used where the relay's process must contain nothing but the relay: the test watches that process
for encoders, decoders and written files, so the peers' codecs must live elsewhere.

Protocol: prints {"offers": [sdp_a, sdp_b]}; reads {"answers": [sdp_a, sdp_b]}; prints
{"a_sees_b": bool, "b_sees_a": bool, "frames": [n_a, n_b], "audio": [n_a, n_b]} and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys

from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE, MediaPeer, looks_like, use_loopback_only


async def main() -> None:
    use_loopback_only()
    a = MediaPeer(RED_BLUE, tone=440)
    b = MediaPeer(GREEN_WHITE, tone=880)
    print(json.dumps({"offers": [await a.offer(), await b.offer()]}), flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    answers = json.loads(line)["answers"]
    await a.accept(answers[0])
    await b.accept(answers[1])

    def enough(r):
        return r.video_frames >= 15 and r.loud_audio_frames >= 15

    await a.wait_for(enough, timeout=25)
    await b.wait_for(enough, timeout=25)
    result = {
        "a_sees_b": a.received.last_video is not None
        and looks_like(a.received.last_video, GREEN_WHITE),
        "b_sees_a": b.received.last_video is not None
        and looks_like(b.received.last_video, RED_BLUE),
        "frames": [a.received.video_frames, b.received.video_frames],
        "audio": [a.received.loud_audio_frames, b.received.loud_audio_frames],
    }
    print(json.dumps(result), flush=True)
    await a.close()
    await b.close()


if __name__ == "__main__":
    asyncio.run(main())
