"""Device health and the supervisor that keeps a device session alive.

One supervisor per device (Home Assistant's coordinator, adapted): it runs the driver's session
coroutine, turns any failure into DOWN, logs the failure once and the recovery once, and retries
with capped exponential backoff, so a device that comes back is used again within about a second.

DOWN is never delayed and a session that comes back is UP at once: stations act on both. DEGRADED
(answering, with faults) has hysteresis: the first fault shows at once, but the device is UP again
only after `recover_after_s` without a fault, so a line with one bad frame in four is one change to
DEGRADED, not a change (a log line, a retained MQTT publish) per frame. State-change log lines are
rate-limited per device, and the line that follows a quiet spell says how many were left out.

A fault is an incident; a *condition* is a standing state ("a sensor's messages are stale", "the
broker refused a subscription") that a driver sets and clears itself (`set_condition(key, reason)`,
`clear_condition(key)`). While any condition stands the device is DEGRADED, its reason the latest
condition's, and neither a good frame (`seen()`) nor the quiet timer brings it UP; DOWN still
overrides, and a session that comes back with a condition standing is DEGRADED, not UP. Once the last
condition is cleared the device is UP after the usual quiet spell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Self

from devices.log_limit import LogLimit
from kernel.backoff import Backoff
from kernel.tasks import cancel_and_wait

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
        recover_after_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device = device
        self._session = session
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._recover_after_s = recover_after_s
        self._clock = clock
        self._last_fault = -math.inf  # clock time of the last fault (DEGRADED's hysteresis)
        self._recover_timer: asyncio.TimerHandle | None = None
        self._log_limit = LogLimit(every=30.0, burst=5)
        self._health = Health(device)
        self._last_seen: float | None = None  # kept apart: set on every frame, folded in when read
        self._conditions: dict[str, str] = {}  # key → reason, the latest set last
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
            new = replace(new, state=state, since=self._clock(), reason=reason)
            self._log_change(old, new)
            self._health = new
            for listener in self._listeners:
                listener(new)
            self._changed.set()
            self._changed = asyncio.Event()
        else:
            self._health = new

    def _log_change(self, old: Health, new: Health) -> None:
        should, left_out = self._log_limit.should_log(self._clock())
        if not should:
            return
        extra: dict[str, object] = {"device": self.device, "state": new.state.value, "reason": new.reason}
        if left_out:
            extra["changes_not_logged"] = left_out
        if new.state == State.UP:
            if old.state in (State.DOWN, State.DEGRADED):
                log.info("device recovered", extra=extra)
            else:
                log.info("device up", extra=extra)
        elif new.state == State.DOWN:
            log.warning("device down", extra=extra)
        elif new.state == State.DEGRADED:
            log.warning("device degraded", extra=extra)

    @property
    def conditions(self) -> dict[str, str]:
        """The standing conditions (key → reason), the latest last."""
        return dict(self._conditions)

    def set_condition(self, key: str, reason: str) -> None:
        """A standing condition (a sensor sending stale messages, a refused subscription): DEGRADED
        with `reason` until `clear_condition(key)`. Setting it again with another reason updates it;
        a device that is DOWN (or not yet up) stays so, and is DEGRADED when its session is back."""
        new = key not in self._conditions
        if not new and self._conditions[key] == reason:
            return
        self._conditions.pop(key, None)
        self._conditions[key] = reason  # the latest last: the one health names
        self._last_fault = self._clock()
        state = self._health.state
        if state in (State.UP, State.DEGRADED):
            self._set(State.DEGRADED, reason, error=new)
        elif new:
            self._health = replace(self.health, errors=self._health.errors + 1)

    def clear_condition(self, key: str) -> None:
        """The condition `key` no longer stands: DEGRADED by the next latest one, if any; else UP once
        the quiet spell of `recover_after_s` since the last fault or condition has passed."""
        if self._conditions.pop(key, None) is None:
            return
        if self._health.state != State.DEGRADED:
            return
        if self._conditions:
            self._set(State.DEGRADED, self._latest_condition())
            return
        now = self._clock()
        if now - self._last_fault >= self._recover_after_s:
            self._set(State.UP)
        else:
            self._arm_recovery(now)

    def _latest_condition(self) -> str:
        return next(reversed(self._conditions.values()))

    def seen(self) -> None:
        """A good frame or answer: the device is UP (from DEGRADED, once the faults have stopped and
        no condition stands)."""
        now = self._clock()
        self._last_seen = now  # a poll at 100 Hz: no new Health per frame
        state = self._health.state
        if state == State.UP:
            return
        if self._conditions:  # DEGRADED while one stands: a session back (or the first) too
            latest = self._latest_condition()
            quiet = now - self._last_fault >= self._recover_after_s  # a fault's reason has had its time
            if state != State.DEGRADED or (quiet and self._health.reason != latest):
                self._set(State.DEGRADED, latest)
            return
        if state == State.DEGRADED and now - self._last_fault < self._recover_after_s:
            self._arm_recovery(now)
            return
        self._set(State.UP)

    def fault(self, reason: str) -> None:
        """Count a fault that did not lose the device (noise, a refused request): DEGRADED until
        `recover_after_s` pass without another. A new reason while DEGRADED is kept on the health
        but is not a change of state: listeners and the log hear of it with the next change."""
        self._last_fault = self._clock()
        if self._health.state == State.DEGRADED:
            self._health = replace(self.health, errors=self._health.errors + 1, reason=reason)
        else:
            self._set(State.DEGRADED, reason, error=True)
        self._arm_recovery(self._last_fault)

    def down(self, reason: str) -> None:
        self._cancel_recovery()
        self._set(State.DOWN, reason, error=True)

    def _arm_recovery(self, now: float) -> None:
        """A device that went quiet after its last fault (a scanner nobody scans with) is UP again
        when the quiet spell is long enough; one that is DOWN meanwhile is not."""
        if self._recover_timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # called outside a loop (a unit test driving the clock): seen() decides
        delay = max(self._last_fault + self._recover_after_s - now, 0.0)
        self._recover_timer = loop.call_later(delay + 0.01, self._recover_if_quiet)

    def _cancel_recovery(self) -> None:
        if self._recover_timer is not None:
            self._recover_timer.cancel()
            self._recover_timer = None

    def _recover_if_quiet(self) -> None:
        self._recover_timer = None
        if self._health.state != State.DEGRADED:
            return
        now = self._clock()
        if now - self._last_fault < self._recover_after_s:
            self._arm_recovery(now)
        elif self._conditions:  # stays DEGRADED; a fault's reason gives way to the condition's
            if self._health.reason != (latest := self._latest_condition()):
                self._set(State.DEGRADED, latest)
        else:
            self._set(State.UP)

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
        try:
            await self._run()
        finally:
            self._cancel_recovery()  # a stopped driver is not brought back UP by a timer

    async def _run(self) -> None:
        backoff = Backoff(self._backoff_initial, self._backoff_max, jitter=(0.5, 1.0))
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
                backoff.reset()  # it had been working: retry quickly
            await asyncio.sleep(backoff.next_delay())


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
