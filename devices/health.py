"""Device health and the supervisor that keeps a device session alive.

One supervisor per device (Home Assistant's coordinator, adapted): it runs the driver's session
coroutine, turns any failure into DOWN, logs the failure once and the recovery once, and retries
with capped exponential backoff, so a device that comes back is used again within about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Self

from bondgate.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class State(StrEnum):
    STARTING = "STARTING"
    UP = "UP"
    DEGRADED = "DEGRADED"  # answering, but with errors (noise, exception responses, timeouts)
    DOWN = "DOWN"


@dataclass(frozen=True)
class Health:
    device: str
    state: State = State.STARTING
    since: float = field(default_factory=time.monotonic)
    last_seen: float | None = None  # monotonic time of the last good frame or answer
    errors: int = 0  # counted faults since start (bad frames, failed requests, disconnects)
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.state == State.UP


class DeviceError(Exception):
    """A device-level failure: the supervisor marks the device DOWN and reconnects."""


Listener = Callable[[Health], None]


class Supervisor:
    """Run `session(supervisor)` forever; it returns or raises when the device is lost."""

    def __init__(
        self,
        device: str,
        session: Callable[[Supervisor], Awaitable[None]],
        *,
        backoff_initial: float = 0.05,
        backoff_max: float = 1.0,
    ) -> None:
        self.device = device
        self._session = session
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._health = Health(device)
        self._last_seen: float | None = None  # kept apart: set on every frame, folded in when read
        self._listeners: list[Listener] = []
        self._changed = asyncio.Event()

    # --- health -------------------------------------------------------------------------------
    @property
    def health(self) -> Health:
        if self._health.last_seen != self._last_seen:
            self._health = replace(self._health, last_seen=self._last_seen)
        return self._health

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(health)` on every state change (not on every frame)."""
        self._listeners.append(listener)

    def _set(self, state: State, reason: str = "", *, error: bool = False) -> None:
        old = self.health
        new = replace(old, errors=old.errors + (1 if error else 0))
        if state != old.state or (reason and reason != old.reason and state != State.UP):
            new = replace(new, state=state, since=time.monotonic(), reason=reason)
            self._log_change(old, new)
            self._health = new
            for listener in self._listeners:
                listener(new)
            self._changed.set()
            self._changed = asyncio.Event()
        else:
            self._health = new

    def _log_change(self, old: Health, new: Health) -> None:
        extra = {"device": self.device, "state": new.state.value, "reason": new.reason}
        if new.state == State.UP:
            if old.state in (State.DOWN, State.DEGRADED):
                log.info("device recovered", extra=extra)
            else:
                log.info("device up", extra=extra)
        elif new.state == State.DOWN:
            log.warning("device down", extra=extra)
        elif new.state == State.DEGRADED:
            log.warning("device degraded", extra=extra)

    def seen(self) -> None:
        """A good frame or answer: the device is UP."""
        self._last_seen = time.monotonic()  # a poll at 100 Hz: no new Health per frame
        if self._health.state != State.UP:
            self._set(State.UP)

    def fault(self, reason: str) -> None:
        """Count a fault that did not lose the device (noise, a refused request): DEGRADED."""
        self._set(State.DEGRADED, reason, error=True)

    def down(self, reason: str) -> None:
        self._set(State.DOWN, reason, error=True)

    async def wait_change(self, timeout: float | None = None) -> Health:
        """Wait for the next state change (tests and the agent use this instead of sleeping)."""
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await changed.wait()
        return self.health

    async def wait_for(self, state: State, timeout: float) -> Health:
        """Wait until the device is in `state`; raises TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            while self._health.state != state:
                await self.wait_change()
        return self.health

    # --- the loop -----------------------------------------------------------------------------
    async def run(self) -> None:
        delay = self._backoff_initial
        task = asyncio.current_task()
        while True:
            started = time.monotonic()
            try:
                await self._session(self)
                reason = "session ended"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any device failure ends the session; never the process
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if task is not None and task.cancelling():
                # stop() cancelled us, but a library's wait_for swallowed it (gh-86296): end anyway
                raise asyncio.CancelledError
            self.down(reason)
            if time.monotonic() - started > 5:
                delay = self._backoff_initial  # it had been working: retry quickly
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self._backoff_max)


class SupervisedDriver:
    """The lifecycle every driver shares: `start()` runs its supervisor as a task, `stop()` cancels
    it and calls `_closed()` for whatever the driver owns (a bus, a connection); `async with` works.
    Drivers set `self.supervisor` and may override `_closed`."""

    supervisor: Supervisor
    name: str
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.supervisor.run(), name=f"{type(self).__name__}:{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait([task])
        await self._closed()

    async def _closed(self) -> None:
        """Release what the driver owns once its supervisor has stopped."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
