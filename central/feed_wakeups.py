"""Waking the feed's long polls when a park's feed grows, in whichever central process it grew.

`Database.listen` calls `ring(park_id)` from the thread that saw the commit (the writer on SQLite, the
LISTEN connection's thread on PostgreSQL); "*" wakes every park's polls (after the listener
reconnected: what was notified while it was away is lost). A poll takes its `bell(park_id)` before
it reads the feed, so a commit between the read and the wait still wakes it.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress

ALL_PARKS = "*"


class FeedBell:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bells: dict[str, asyncio.Event] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the polls wait on (the server's)."""
        self._loop = loop

    def bell(self, park_id: str) -> asyncio.Event:
        """The event set at the park's next commit (call on the loop, before reading the feed)."""
        return self._bells.setdefault(park_id, asyncio.Event())

    def ring(self, park_id: str) -> None:
        """From any thread: wake the park's polls (every park's for "*")."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with suppress(RuntimeError):  # the loop closed in between: nobody is waiting
                loop.call_soon_threadsafe(self._ring, park_id)

    def _ring(self, park_id: str) -> None:
        parks = list(self._bells) if park_id == ALL_PARKS else [park_id]
        for park in parks:
            event = self._bells.pop(park, None)
            if event is not None:
                event.set()

    @staticmethod
    async def wait(event: asyncio.Event, timeout: float) -> bool:
        """Wait up to `timeout` seconds for `event`; whether it was set."""
        if timeout <= 0:
            return event.is_set()
        with suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        return event.is_set()
