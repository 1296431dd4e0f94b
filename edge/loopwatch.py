"""Is the event loop being held up? One watcher per loop, shared by every station that asks.

Readings are stamped when the event loop reads them, so a loop held up for longer than a station's
margin (a slow callback, a paused VM) stamps what came meanwhile late, and the station must know
(edge/stations/conveyor.py). The watcher sleeps `interval` at a time and reports every wake-up that
came more than `threshold` late as a stall: (from when it should have woken, to when it did).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

Listener = Callable[[float, float], None]


class LoopWatch:
    """`subscribe(threshold, listener)` → an unsubscribe function; the task runs while anyone listens."""

    def __init__(self) -> None:
        self._listeners: dict[int, tuple[float, Listener]] = {}
        self._next = 0
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, threshold: float, listener: Listener) -> Callable[[], None]:
        key, self._next = self._next, self._next + 1
        self._listeners[key] = (threshold, listener)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-watch")

        def unsubscribe() -> None:
            self._listeners.pop(key, None)
            if not self._listeners and self._task is not None:
                self._task.cancel()
                self._task = None

        return unsubscribe

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._listeners:
            interval = min(0.005, min(t for t, _ in self._listeners.values()) / 2 or 0.005)
            expected = loop.time() + interval
            await asyncio.sleep(interval)
            now = loop.time()
            for threshold, listener in list(self._listeners.values()):
                if now - expected > threshold:
                    with contextlib.suppress(Exception):
                        listener(expected, now)


_WATCHES: dict[asyncio.AbstractEventLoop, LoopWatch] = {}


def watch() -> LoopWatch:
    """The running loop's watcher."""
    loop = asyncio.get_running_loop()
    for other in [lp for lp in _WATCHES if lp.is_closed()]:
        del _WATCHES[other]
    return _WATCHES.setdefault(loop, LoopWatch())
