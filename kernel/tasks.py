"""Long-lived asyncio tasks: run supervised (restarted with backoff, their state readable), and stopped
for sure.

`SupervisedTasks` runs each long-lived coroutine of a process (the edge agent's feed sync, uplink,
heartbeat) the way `devices.health.Supervisor` runs a device session: a coroutine that raises or
returns is DOWN, logged once with its error, and started again after a backoff (doubling, jittered,
capped); once a restarted coroutine has run `settle_s` without failing it is UP again, logged once.
So a task that fails on every start (a full disk) is one failure line, not one per retry, and a
task that dies never dies silently: its state is in `health()` for /api/status and /healthz.

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
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from kernel.backoff import Backoff

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


class TaskState(StrEnum):
    UP = "UP"  # running, and not failed since it last settled
    DOWN = "DOWN"  # failed; being restarted with backoff until a start settles


@dataclass(frozen=True)
class TaskHealth:
    name: str
    since: datetime  # when it entered this state (UTC)
    state: TaskState = TaskState.UP
    failures: int = 0  # since the process started
    restarts: int = 0
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "since": self.since.isoformat(),
            "failures": self.failures,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }


class SupervisedTasks:
    """Named long-lived coroutines, each restarted with backoff when it fails (module docstring)."""

    def __init__(
        self,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        settle_s: float = 3.0,
        logger: logging.Logger = log,
    ) -> None:
        self.backoff_initial, self.backoff_max, self.settle_s = backoff_initial, backoff_max, settle_s
        self._log = logger
        self._health: dict[str, TaskHealth] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, factory: Callable[[], Coroutine[Any, Any, object]]) -> None:
        """Run `factory()` under supervision as task `name`; a new coroutine for every restart."""
        if name in self._tasks:
            raise ValueError(f"task {name} is already supervised")
        self._health[name] = TaskHealth(name, since=datetime.now(UTC))
        self._tasks[name] = asyncio.create_task(self._supervise(name, factory), name=name)

    def health(self) -> dict[str, TaskHealth]:
        return dict(self._health)

    def down(self) -> list[TaskHealth]:
        return [h for h in self._health.values() if h.state is TaskState.DOWN]

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        await cancel_and_wait(tasks)

    async def _supervise(self, name: str, factory: Callable[[], Coroutine[Any, Any, object]]) -> None:
        loop = asyncio.get_running_loop()
        current = asyncio.current_task()
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        while True:
            # a restart counts as recovered once it has run settle_s without failing
            timer = loop.call_later(self.settle_s, self._settled, name) if self._is_down(name) else None
            failure: BaseException | None = None
            try:
                await factory()
                reason = "ended"  # a long-lived task that returns has stopped doing its job
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of the task; never of the process
                failure, reason = exc, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            finally:
                if timer is not None:
                    timer.cancel()
            if current is not None and current.cancelling():
                raise asyncio.CancelledError  # stop() cancelled us and a library swallowed it (gh-86296)
            if not self._is_down(name):
                backoff.reset()  # it had been working: restart quickly
            self._failed(name, reason, failure)
            await asyncio.sleep(backoff.next_delay())
            self._health[name] = replace(self._health[name], restarts=self._health[name].restarts + 1)

    def _is_down(self, name: str) -> bool:
        return self._health[name].state is TaskState.DOWN

    def _failed(self, name: str, reason: str, exc: BaseException | None) -> None:
        old = self._health[name]
        new = replace(old, failures=old.failures + 1, last_error=reason)
        if old.state is TaskState.UP:  # one line per outage, not one per failed restart
            new = replace(new, state=TaskState.DOWN, since=datetime.now(UTC))
            self._log.error(
                "task failed; restarting it with backoff",
                extra={"task": name, "error": reason},
                exc_info=exc,
            )
        self._health[name] = new

    def _settled(self, name: str) -> None:
        old = self._health[name]
        self._health[name] = replace(old, state=TaskState.UP, since=datetime.now(UTC))
        self._log.info("task recovered", extra={"task": name, "failures": old.failures})
