"""A TCP front that makes a Modbus TCP module take one connection at a time, as some cheap modules
do. What happens to a second connection is the `policy`:

- "refuse": accepted and closed at once,
- "silent": accepted and never answered,
- "evict": taken, and the older connection is closed;
- "any": taken alongside (a module that takes several; the policy may be changed at any time).

Bytes are relayed unchanged to the module behind it (our simulator), so everything else is real.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

Policy = Literal["refuse", "silent", "evict", "any"]


class SingleConnectionFront:
    def __init__(self, backend_port: int, policy: Policy) -> None:
        self.backend_port = backend_port
        self.policy = policy
        self.port = 0
        self.turned_away = 0
        self._server: asyncio.Server | None = None
        self._active: asyncio.StreamWriter | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> SingleConnectionFront:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.policy != "any" and self._active is not None and not self._active.is_closing():
            if self.policy != "evict":
                self.turned_away += 1
                if self.policy == "silent":
                    while await reader.read(4096):  # swallow requests until the client gives up
                        pass
                return
            self.turned_away += 1
            self._active.close()
        self._active = writer
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            if self._active is writer:
                self._active = None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
