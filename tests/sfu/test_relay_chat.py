"""The in-call chat: opaque messages relayed between the legs' data channels, never kept."""

from __future__ import annotations

import asyncio

from tests.sfu.conftest import join
from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE


async def chatting(relay, peers):
    room = relay.create_room()
    a = peers(RED_BLUE, tone=440, chat=True)
    b = peers(GREEN_WHITE, tone=880, chat=True)
    await join(room, "a", a)
    await join(room, "b", b)
    for seat, peer in (("a", a), ("b", b)):
        assert await peer.wait_for(lambda r, s=seat: room.chat_open(s), timeout=15)
    return room, a, b


async def test_a_chat_message_reaches_the_other_side_unchanged(relay, peers):
    room, a, b = await chatting(relay, peers)
    a.chat.send("ciphertext:0123")
    b.chat.send(b"\x00\xffbinary")
    assert await b.wait_for(lambda r: b.chat_messages == ["ciphertext:0123"], timeout=5)
    assert await a.wait_for(lambda r: a.chat_messages == [b"\x00\xffbinary"], timeout=5)
    assert room.chat_relayed == 2


async def test_an_oversized_chat_message_is_not_relayed(relay, peers):
    _, a, b = await chatting(relay, peers)
    a.chat.send("x" * 20000)
    a.chat.send("after")
    assert await b.wait_for(lambda r: b.chat_messages == ["after"], timeout=5)


async def test_a_chat_flood_is_cut_to_the_rate_limit(relay, peers):
    _, a, b = await chatting(relay, peers)
    for i in range(200):
        a.chat.send(f"m{i}")
    await asyncio.sleep(1.0)
    assert 20 <= len(b.chat_messages) <= 30  # a burst of 20, then 5 per second
    assert b.chat_messages[:20] == [f"m{i}" for i in range(20)]


async def test_a_message_for_an_absent_side_is_dropped_not_kept(relay, peers):
    room = relay.create_room()
    a = peers(RED_BLUE, tone=440, chat=True)
    await join(room, "a", a)
    assert await a.wait_for(lambda r: room.chat_open("a"), timeout=15)
    a.chat.send("is anyone there?")
    await asyncio.sleep(0.3)
    assert room.chat_dropped == 1
    b = peers(GREEN_WHITE, tone=880, chat=True)
    await join(room, "b", b)
    assert await b.wait_for(lambda r: room.chat_open("b"), timeout=15)
    await asyncio.sleep(0.5)
    assert b.chat_messages == []
