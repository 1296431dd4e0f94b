"""Live station screens: each station's changes fanned out to the screens that are open on it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Iterator, Mapping

from edge.api.screen import Snapshot
from edge.stations.base import Station, StationView

log = logging.getLogger("edge.pages")


class StationFeeds:
    """One listener per station fans each change out to a bounded queue per connected screen.

    Registered once (stations have no unsubscribe); a screen's queue lives only while its stream
    is open. A slow screen loses old snapshots, never the newest: each one is the whole state. The
    listener never raises into the station: a page must never disturb a decision."""

    def __init__(self, stations: Mapping[str, Station], depth: int = 8) -> None:
        self.depth = depth
        self._queues: dict[str, set[asyncio.Queue[Snapshot]]] = {name: set() for name in stations}
        for name, station in stations.items():
            station.subscribe(functools.partial(self._changed, name))

    def _changed(self, name: str, view: StationView) -> None:
        queues = self._queues[name]
        if not queues:
            return
        try:
            snap = Snapshot.of(view)
            for queue in queues:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(snap)
        except Exception:  # a screen must never break a station
            log.exception("station screen update failed", extra={"station": name})

    def clients(self, name: str) -> int:
        return len(self._queues.get(name, ()))

    @contextlib.contextmanager
    def client(self, name: str) -> Iterator[asyncio.Queue[Snapshot]]:
        queue: asyncio.Queue[Snapshot] = asyncio.Queue(maxsize=self.depth)
        self._queues[name].add(queue)
        try:
            yield queue
        finally:
            self._queues[name].discard(queue)
