"""signaling.task_ends: background tasks end, and a cancel is never swallowed on the way."""

from __future__ import annotations

import asyncio

from signaling.task_ends import let_finish, stop_tasks


async def test_a_task_that_ends_within_its_time_ends_by_itself():
    sent = []

    async def writer():
        await asyncio.sleep(0)
        sent.append("last message")

    task = asyncio.create_task(writer())
    await let_finish(task, 10.0)
    assert sent == ["last message"] and not task.cancelled()


async def test_a_task_still_running_after_its_time_is_stopped():
    never = asyncio.Event()
    task = asyncio.create_task(never.wait())
    await let_finish(task, 0.05)
    assert task.cancelled()


async def test_a_cancel_of_the_caller_goes_on_up_and_stops_the_task_too():
    # the old finish paths awaited wait_for(shield(writer)) under suppress(CancelledError): the
    # handler's own cancel was swallowed and it carried on
    never = asyncio.Event()
    writer = asyncio.create_task(never.wait())
    finishing = asyncio.Event()

    async def handler():
        finishing.set()
        await let_finish(writer, 60.0)
        return "carried on"

    caller = asyncio.create_task(handler())
    await asyncio.wait_for(finishing.wait(), 10)
    caller.cancel()
    done, _ = await asyncio.wait({caller}, timeout=10)
    assert caller in done and caller.cancelled()
    await asyncio.wait({writer}, timeout=10)
    assert writer.cancelled()


async def test_a_task_that_swallows_one_cancel_is_cancelled_again_until_it_ends():
    # what a task inside redis-py's wait_for does on Python 3.11 when the cancel and the result
    # arrive together
    cancels = []

    async def stubborn():
        for _ in range(3):
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancels.append(1)
        return "ended"

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_tasks([task]), 10)
    assert task.done() and len(cancels) == 3
