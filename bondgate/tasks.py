"""Stopping asyncio tasks for sure.

On Python 3.11, `asyncio.wait_for` can swallow a cancellation when the awaited thing finishes in the
same loop iteration as the cancel (CPython gh-86296, fixed in 3.12 by rebuilding `wait_for` on
`asyncio.timeout`). Our code no longer uses `wait_for`, but libraries do (pymodbus, httpx's pools),
so a task cancelled once may go on running. `cancel_and_wait` cancels again until the task has
really ended, so `Agent.stop()` on SIGTERM cannot hang.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

log = logging.getLogger(__name__)


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[object] | None],
    *,
    grace_s: float = 3.0,
    retry_s: float = 0.25,
    give_up_s: float = 10.0,
) -> None:
    """Cancel `tasks` and wait until each has ended, re-cancelling any that swallowed the cancel.

    A task gets `grace_s` to finish what its `finally` does after the first cancel (a barrier pulse
    sends its "off", bounded by the bus timeout) before it is cancelled again, then again every
    `retry_s`. A task that ended with an exception other than CancelledError is logged, not raised:
    stopping must stop everything else too. Gives up (and logs the names) after `give_up_s`.
    """
    pending = {t for t in tasks if t is not None}
    for task in pending:
        task.cancel()
    started = time.monotonic()
    wait = grace_s
    while pending:
        done, pending = await asyncio.wait(pending, timeout=wait)
        for task in done:
            if not task.cancelled() and (exc := task.exception()) is not None:
                log.error("task failed while stopping", extra={"task": task.get_name()}, exc_info=exc)
        if not pending:
            return
        if time.monotonic() - started > max(give_up_s, grace_s):
            log.error("tasks did not stop", extra={"tasks": sorted(t.get_name() for t in pending)})
            return
        for task in pending:  # a cancel swallowed by a library's wait_for: deliver another
            task.cancel()
        wait = retry_s
