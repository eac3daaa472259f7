"""The in-call chat: opaque messages relayed between the legs' data channels, never kept."""

from __future__ import annotations

import time

from tests.sfu.conftest import join
from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE, until


async def chatting(relay, peers):
    room = relay.create_room()
    a = peers(RED_BLUE, tone=440, chat=True)
    b = peers(GREEN_WHITE, tone=880, chat=True)
    await join(room, "a", a)
    await join(room, "b", b)
    await both_open(room, (("a", a), ("b", b)))
    return room, a, b


async def both_open(room, seated) -> None:
    """Each side's channel is open at both of its ends: the peer can send, the relay can pass on
    (waiting for the relay's end only let a peer send before its own end opened: #18)."""
    for seat, peer in seated:
        await until(lambda s=seat: room.chat_open(s), f"the relay's end of {seat}'s chat opened")
        await peer.channel_open()


async def test_a_chat_message_reaches_the_other_side_unchanged(relay, peers):
    room, a, b = await chatting(relay, peers)
    a.chat.send("ciphertext:0123")
    b.chat.send(b"\x00\xffbinary")
    await until(lambda: b.chat_messages == ["ciphertext:0123"], "b got a's message unchanged")
    await until(lambda: a.chat_messages == [b"\x00\xffbinary"], "a got b's message unchanged")
    assert room.chat_relayed == 2


async def test_an_oversized_chat_message_is_not_relayed(relay, peers):
    _, a, b = await chatting(relay, peers)
    a.chat.send("x" * 20000)
    a.chat.send("after")
    await until(lambda: b.chat_messages != [], "b got the message after the oversized one")
    assert b.chat_messages == ["after"]


async def test_a_chat_flood_is_cut_to_the_rate_limit(relay, peers):
    room, a, b = await chatting(relay, peers)
    started = time.monotonic()
    for i in range(200):
        a.chat.send(f"m{i}")
    # the relay has decided on every one of them, and b has what it let through
    await until(lambda: room.chat_relayed + room.chat_refused == 200, "the relay saw all 200")
    elapsed = time.monotonic() - started
    await until(lambda: len(b.chat_messages) == room.chat_relayed, "b got what was relayed")
    assert 20 <= room.chat_relayed <= 20 + 5 * elapsed + 1  # a burst of 20, then 5 per second
    assert b.chat_messages[:20] == [f"m{i}" for i in range(20)]


async def test_a_message_for_an_absent_side_is_dropped_not_kept(relay, peers):
    room = relay.create_room()
    a = peers(RED_BLUE, tone=440, chat=True)
    await join(room, "a", a)
    await both_open(room, (("a", a),))
    a.chat.send("is anyone there?")
    await until(lambda: room.chat_dropped == 1, "the relay dropped the message for nobody")
    b = peers(GREEN_WHITE, tone=880, chat=True)
    await join(room, "b", b)
    await both_open(room, (("b", b),))
    a.chat.send("later")  # a marker: had the first been kept, it would arrive before this one
    await until(lambda: b.chat_messages != [], "b got the later message")
    assert b.chat_messages == ["later"]
