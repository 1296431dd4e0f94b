"""The edge agent: one asyncio process per park.

It starts the devices, drives every station's outputs to the safe state, pulls the feed, decides
on the local cache (with or without central), forwards events through the durable outbox, publishes
decisions and state on the park's MQTT broker and serves the local HTTP API — all on one event
loop. Blocking work (SQLite commits, signature checks of whole feed pages, OpenCV) runs in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import signal
import sqlite3
import time
from datetime import datetime

import httpx

from devices.health import Health, State
from edge import release_ledger, rules, startup
from edge.central_client import build_client, describe
from edge.checker import Checker, DecisionRecord
from edge.config import ConveyorStation, EdgeSettings, GateStation, ManualStation, VehicleGateStation
from edge.devices import DeviceHub
from edge.publisher import Publisher
from edge.stations.base import Station
from edge.stations.conveyor import Conveyor
from edge.stations.gate import Gate
from edge.stations.manual import Manual
from edge.stations.vehicle_gate import VehicleGate
from edge.store import Store, new_event
from edge.sync import FeedSync
from edge.uplink import Uplink
from edge.verified import VerifiedTexts
from kernel.config import ConfigError
from kernel.tasks import SupervisedTasks, cancel_and_wait
from kernel.timefmt import utc_now
from kernel.wire import Event, EventBody, EventKind

log = logging.getLogger(__name__)
NO_RECORD_AT_CENTRAL = "central has no record of edge"  # edge/chain.py judge(): central lost its own

STATION_CLASSES: dict[type, type[Station]] = {
    ConveyorStation: Conveyor,
    ManualStation: Manual,
    GateStation: Gate,
    VehicleGateStation: VehicleGate,
}


class Agent:
    def __init__(self, settings: EdgeSettings) -> None:
        """Raises ConfigError, naming every key at fault, when what the settings point at is not
        usable (edge/startup.py) — before anything is opened or started."""
        self.settings = settings
        self.public_key = startup.check(settings)
        try:
            self.store = Store(settings.database)
        except sqlite3.Error as exc:
            raise ConfigError.of([("database", f"cannot open '{settings.database}': {exc}")]) from exc
        self.client = build_client(settings.central, timeout=httpx.Timeout(30, connect=5))
        self.hub = DeviceHub.from_config(settings.devices, evidence_dir=settings.evidence_dir)
        self.publisher = (
            Publisher(settings.mqtt, park_id=settings.park_id, edge_id=settings.edge_id)
            if settings.mqtt
            else None
        )
        self.verified = VerifiedTexts()  # what the sync verified, so a decision need not again
        self.sync = FeedSync(
            store=self.store,
            client=self.client,
            park_id=settings.park_id,
            public_key=self.public_key,
            edge_id=settings.edge_id,
            page_size=settings.central.page_size,
            long_poll_s=settings.central.long_poll_s,
            verified=self.verified,
        )
        self.uplink = Uplink(
            store=self.store,
            client=self.client,
            park_id=settings.park_id,
            edge_id=settings.edge_id,
            batch_size=settings.central.batch_size,
            linger_s=settings.central.send_every_s,
        )
        self.checker = Checker(
            store=self.store,
            public_key=self.public_key,
            tolerance=rules.Tolerance(
                absolute_kg=settings.tolerance.absolute_kg, percent=settings.tolerance.percent
            ),
            edge_id=settings.edge_id,
            staleness_limit_s=settings.staleness_limit_s,
            park_id=settings.park_id,
            stale_policy=settings.stale_policy,
            on_commit=self._committed,
            verified=self.verified,
        )
        self.stations: dict[str, Station] = {
            s.name: STATION_CLASSES[type(s)](s, self.hub, self.checker) for s in settings.stations
        }
        self.recent: list[DecisionRecord] = []
        for station in self.stations.values():
            if self.publisher:
                station.subscribe(self.publisher.station_state)
        self.tasks = SupervisedTasks(logger=log)  # sync, uplink, heartbeat: restarted when they fail
        self._reports: set[asyncio.Task[None]] = set()  # device faults being written upstream
        # the release ledger, walked once at start
        self._ledger_check: asyncio.Task[release_ledger.Verification] | None = None
        self.checker.history_doubt = self._history_doubt
        self._started_at: float | None = None
        self._stopping = asyncio.Event()

    # --- state for the API -----------------------------------------------------------------------
    @property
    def stopping(self) -> asyncio.Event:
        """Set once the agent is asked to stop (SIGINT/SIGTERM in `serve`): open page streams end."""
        return self._stopping

    def sync_age(self) -> float | None:
        """Seconds since the last successful pull, from the database (survives restarts)."""
        return Store.sync_age_s(self.store.reader())

    def _history_doubt(self) -> str | None:
        """This database may not know every release it made: central holds more of this edge's
        chain than it does (restored from an older copy, lost, replaced) — releases hold until the
        edge is re-provisioned. Central not knowing the edge at all (its own database replaced) is
        no doubt about this one's."""
        problem = self.uplink.status.chain_problem
        if problem is None or problem.startswith(NO_RECORD_AT_CENTRAL):
            return None
        return problem

    def health_problems(self) -> list[str]:
        """Why the agent is not healthy (/healthz answers 503 with these); empty when it is."""
        down = self.tasks.down()
        problems = [f"task {t.name} down since {t.since.isoformat()}: {t.last_error}" for t in down]
        link = self.uplink.status
        if link.chain_problem is not None:
            problems.append(f"event chain: {link.chain_problem}")
        if (refused := link.central_refusal) is not None:
            where = f"central refuses this edge's events from seq {refused.seq} ({refused.code})"
            problems.append(f"{where}: {refused.reason}")
        problems += self._stuck_links()
        if self.publisher is not None and self._started_at is not None and not self.publisher.running:
            problems.append("the MQTT publisher has stopped: screens see no decisions or state")
        return problems

    def _stuck_links(self) -> list[str]:
        """Events not delivered, or the feed not pulled, for longer than `[central] alarm_after_s`,
        whatever the reason (central down, refusing, lying, a wrong token or park): the agent goes on
        deciding, but it is not well and should say so."""
        limit = self.settings.central.alarm_after_s
        problems = []
        backlog = self.store.backlog()
        oldest = backlog.get("oldest")
        if backlog["size"] and oldest:
            with contextlib.suppress(ValueError, TypeError):
                age = (utc_now() - datetime.fromisoformat(oldest)).total_seconds()
                if age > limit:
                    link = self.uplink.status
                    why = link.last_error or link.last_ack_problem or "not acknowledged"
                    problems.append(
                        f"{backlog['size']} event(s) not delivered, the oldest {age:.0f} s old: {why}"
                    )
        sync_age = self.sync_age()
        up_for = time.monotonic() - self._started_at if self._started_at is not None else 0.0
        if (sync_age is None and up_for > limit) or (sync_age is not None and sync_age > limit):
            shown = f"never in {up_for:.0f} s" if sync_age is None else f"{sync_age:.0f} s ago"
            why = self.sync.status.last_error or "no successful pull yet"
            problems.append(f"clearance feed last pulled {shown}: {why}")
        return problems

    def _committed(self, record: DecisionRecord) -> None:
        self.recent.append(record)
        del self.recent[:-200]
        self.uplink.poke()
        if self.publisher:
            self.publisher.decision(record)

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self._started_at = time.monotonic()
        if self.publisher:
            await self.publisher.start()
            for name, driver in self.hub.drivers.items():
                driver.supervisor.subscribe(functools.partial(self.publisher.device_health, name))
        for name, driver in self.hub.drivers.items():
            driver.supervisor.subscribe(functools.partial(self._device_changed, name))
        await self.hub.start()
        for station in self.stations.values():
            await station.start()
        # sync.run handles its own link and store failures; anything that still ends a task (a full
        # disk under the uplink or the heartbeat, a bug) is logged, shown and restarted with backoff
        self.tasks.start("sync", self.sync.run)
        self.tasks.start("uplink", self.uplink.run)
        self.tasks.start("heartbeat", self._heartbeat)
        self._ledger_check = asyncio.create_task(
            self.checker.verify_release_history(), name="release-ledger-check"
        )
        log.info(
            "edge agent started",
            extra={
                "park": self.settings.park_id,
                "edge": self.settings.edge_id,
                "stations": list(self.stations),
                "central": describe(self.settings.central),
            },
        )
        if not describe(self.settings.central)["tls"]:
            log.warning(
                "central is reached over plain http: for the demo only",
                extra={"url": self.settings.central.url},
            )

    def _device_changed(self, device: str, health: Health) -> None:
        """A device that goes DOWN is reported upstream as a device_fault event (once per outage)."""
        if health.state is State.DOWN:
            task = asyncio.create_task(
                self.checker.report_fault(None, device, health.reason or "down"), name=f"fault:{device}"
            )
            self._reports.add(task)
            task.add_done_callback(self._reported)

    def _reported(self, task: asyncio.Task[None]) -> None:
        self._reports.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("device fault not recorded", extra={"task": task.get_name()}, exc_info=exc)

    async def _heartbeat(self) -> None:
        while True:
            backlog = self.store.backlog()["size"]
            body = EventBody(backlog=backlog, detail=f"sync cursor {self.sync.status.cursor}")

            def heartbeat(conn: sqlite3.Connection, body: EventBody = body) -> Event:
                return new_event(
                    conn,
                    edge_id=self.settings.edge_id,
                    kind=EventKind.HEARTBEAT,
                    station=None,
                    body=body,
                    occurred_at=utc_now(),
                )

            await self.store.write(heartbeat)
            self.uplink.poke()
            await asyncio.sleep(self.settings.heartbeat_s)

    async def stop(self) -> None:
        for station in self.stations.values():
            await station.stop()
        await self.tasks.stop()
        await cancel_and_wait([*self._reports, self._ledger_check])
        await self.hub.stop()
        if self.publisher:
            await self.publisher.stop()
        await self.client.aclose()
        self.sync.close()
        self.store.close()

    async def serve(self) -> None:
        """Run until SIGINT/SIGTERM, with the local API."""
        import uvicorn

        from edge.api import create_app

        api = self.settings.api
        sock = startup.listen(api)  # ConfigError (api.host / api.port) before anything starts
        if not api.tls and not _loopback(api.host):
            log.warning(
                "the local API serves plain HTTP beyond this machine: passwords and session cookies"
                " cross the network in clear; set [api] tls_cert and tls_key",
                extra={"host": api.host, "port": api.port},
            )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        try:
            await self.start()
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(self),
                    host=api.host,
                    port=api.port,
                    ssl_certfile=api.tls_cert,
                    ssl_keyfile=api.tls_key,
                    proxy_headers=False,  # failed logins count against the real peer, not a header
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                )
            )
            server_task = asyncio.create_task(server.serve(sockets=[sock]), name="api")
            log.info("local API listening", extra={"url": startup.api_url(api, sock)})
            try:
                await self._stopping.wait()
            finally:
                server.should_exit = True
                with contextlib.suppress(Exception):
                    await server_task
                await self.stop()
        finally:
            sock.close()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
