"""A read-only probe that `benchmarks/soak.py` loads into the server it starts, and nowhere else.

The soak puts this directory first on the server's ``PYTHONPATH``, so Python imports this module at
start-up. When ``SOAK_TASK_PROBE`` names a file, SIGUSR1 makes the server write the number of live
asyncio tasks, grouped by coroutine name, into it. Python runs signal handlers in the main thread
between bytecodes, i.e. inside the running event loop, where ``asyncio.all_tasks()`` is safe.

The service has no metric for its tasks (see the soak's section in benchmarks/README.md); this
lets the soak tell a task leak from a socket or memory leak without changing the service.
"""

import os
import signal

_PATH = os.environ.get("SOAK_TASK_PROBE")


def _write_tasks(signum: int, frame: object) -> None:
    import asyncio
    import collections
    import json

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # not serving yet, or already stopped
    names = collections.Counter(
        getattr(task.get_coro(), "__qualname__", "?") for task in asyncio.all_tasks(loop)
    )
    temporary = f"{_PATH}.tmp"
    with open(temporary, "w", encoding="utf-8") as out:
        json.dump({"tasks": sum(names.values()), "by_coroutine": dict(names)}, out)
    os.replace(temporary, _PATH)


if _PATH:
    signal.signal(signal.SIGUSR1, _write_tasks)
