"""Manual check station: a worker scans (or types the code of a label that will not read), the
scale weighs, the screen shows RELEASE / HOLD / INSPECT and why. A supervisor may override the
operational findings — weight, label, device — with a reason; never a customs finding."""

from __future__ import annotations

import asyncio
import time

from devices.events import BarcodeRead, DeviceEvent, NoRead
from edge import rules
from edge.checker import Checker, DecisionRecord
from edge.config import ManualStation
from edge.devices import DeviceHub
from edge.stations.base import Station, StationState

# findings a supervisor may take responsibility for, and what the re-check then waives
WAIVABLE: dict[str, str] = {
    rules.Code.WEIGHT_MISMATCH: "weight",
    rules.Code.NO_WEIGHT: "weight",
    rules.Code.LABEL_MISMATCH: "label",
    rules.Code.DEVICE_FAULT: "devices",
}


class OverrideRefused(Exception):
    """The decision has a finding no one at the park may override (customs, cache, signature)."""


class Manual(Station):
    kind = "manual"
    config: ManualStation

    def __init__(self, config: ManualStation, hub: DeviceHub, checker: Checker) -> None:
        super().__init__(config, hub, checker)
        self._lock = asyncio.Lock()
        self._overriding = asyncio.Lock()  # one override at a time: two at once both passed the check
        self.watch_platform()

    def _on_scanner(self, event: DeviceEvent) -> None:
        if isinstance(event, (BarcodeRead, NoRead)):
            code = event.code if isinstance(event, BarcodeRead) else None
            self.spawn(self.check(code, at=event.at), "check")

    async def check(
        self,
        code: str | None,
        *,
        at: float | None = None,
        operator: str | None = None,
        waive: frozenset[str] = frozenset(),
        same_parcel: bool = False,
    ) -> DecisionRecord:
        """One parcel at the bench: a scan, or a code typed by `operator`. Its weight is one measured
        after the scan (or the typing): never a reading of the parcel weighed before it."""
        scanned_at = at if at is not None else time.monotonic()
        async with self._lock:
            try:
                return await self._check(
                    code, scanned_at, operator=operator, waive=waive, same_parcel=same_parcel
                )
            except Exception as exc:  # typed codes come straight from the API: say it on the screen
                self.show_failure(exc)
                raise

    async def _check(
        self,
        code: str | None,
        scanned_at: float,
        *,
        operator: str | None,
        waive: frozenset[str],
        same_parcel: bool = False,
    ) -> DecisionRecord:
        self._set(StationState.CHECKING)
        faults: dict[str, str] = {}
        weighed = code and "weight" not in waive  # a waived weight is not taken at all
        weight = (
            await self.weigh(self.config.weight_deadline_s, faults, since=scanned_at, same_parcel=same_parcel)
            if weighed
            else None
        )
        codes, evidence = await self.look(scanned_at, faults) if code else ((), None)
        record = await self.decide(
            code=code,
            weight=weight,
            camera_codes=codes,
            evidence=evidence,
            faults=faults,
            operator=operator,
            waive=waive,
        )
        self.show(record)
        # the bench's output is its screen: the worker acts on what it shows
        await self.checker.record_actuation(
            self.name, record, outcome="confirmed", output="screen", detail="shown on the station screen"
        )
        return record

    async def override(self, decision: DecisionRecord, *, operator: str, reason: str) -> DecisionRecord:
        """Re-check the same parcel with the supervisor's waiver; audited as an override."""
        async with self._overriding:
            return await self._override(decision, operator=operator, reason=reason)

    async def _override(self, decision: DecisionRecord, *, operator: str, reason: str) -> DecisionRecord:
        already = self.checker.store.override_of(decision.id)
        if already is not None:
            raise OverrideRefused("that decision is already overridden")
        blocking = [c for c in decision.codes if c not in WAIVABLE]
        if blocking or not decision.codes:
            raise OverrideRefused(
                "cannot override " + (", ".join(blocking) if blocking else "a decision without findings")
            )
        waive = frozenset(WAIVABLE[c] for c in decision.codes)
        record = await self.check(
            decision.code, operator=f"{operator} (override: {reason})", waive=waive, same_parcel=True
        )
        await self.checker.record_override(self.name, decision, record, operator=operator, reason=reason)
        return record
