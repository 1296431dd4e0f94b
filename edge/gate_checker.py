"""Check one vehicle at a vehicle gate (卡口) and commit the passage with its event.

As edge/checker.py does for a parcel, in ONE durable transaction on the store's writer thread: the
vehicle's release notes are found by plate or card and their signatures verified, the inventories
they list are looked up in the clearance cache with what this edge knows of them (released by the
line here, already out through this gate), the pure rules (edge/vehicle_rules.py) decide, and the
decision row, the passage row and the hash-chained PASSAGE event reporting it are written — before
the barrier moves. A supervisor's override is the same check run again with the same collected
facts: it passes only a stop `vehicle_rules.overridable` allows, and is its own decision and event.

Which notes are candidates: those naming the plate read or the card read. A note this edge already
let a vehicle through on at this gate, or one central has closed (passed, deleted, voided), is left
out while an open one remains, so an old note in the cache does not make every later one ambiguous;
with no open one left, the closed ones are decided on, so the driver is told why (already passed,
voided …) rather than "no note".
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from edge import vehicle_rules as vr
from edge.checker import Checker, DecisionRecord
from edge.store import CachedNote, Store
from kernel.timefmt import iso_now, utc_now
from kernel.wire import EventBody, EventKind, NoteRecord, PassageBody, verify_note, verify_record

CLOSED = frozenset({"2", "4", "5", "6"})


class OverrideRefused(Exception):
    """A supervisor asked to release a stop the rules do not let be overridden."""


@dataclass(frozen=True)
class PassageRecord:
    """A committed vehicle decision: the DecisionRecord stations, screens and MQTT share, the rules'
    decision, the note it was checked against."""

    decision: DecisionRecord
    rules: vr.Decision | None  # None: a decision taken up again after a restart (its row only)
    note: NoteRecord | None
    passage: vr.Passage
    overridden: bool = False


@dataclass
class GateChecker:
    checker: Checker
    tolerance: vr.GateTolerance

    def _candidates(
        self, conn: sqlite3.Connection, passage: vr.Passage
    ) -> list[tuple[CachedNote, NoteRecord]]:
        found = [
            (c, c.record)
            for c in Store.notes_for_vehicle(conn, plate=passage.plate, card=passage.card)
            if c.record is not None
        ]
        stage = passage.gate
        last_stage = "single" if stage == "single" else "second"
        open_ = [
            (c, r)
            for c, r in found
            if r.status not in CLOSED and Store.passages_on(conn, r.etpsPreentNo, last_stage) == 0
        ]
        return open_ or found

    def gate_cache(
        self, conn: sqlite3.Connection, passage: vr.Passage
    ) -> tuple[vr.GateCache, list[NoteRecord]]:
        """What the cache says of this vehicle, read through `conn`: the decision's own transaction."""
        key = self.checker.public_key
        candidates = self._candidates(conn, passage)
        facts, records = [], []
        invt_nos: list[str] = []
        for _, record in candidates:
            records.append(record)
            facts.append(
                vr.NoteFacts(
                    note_no=record.etpsPreentNo,
                    passport_no=record.passportNo,
                    park_id=record.park_id,
                    version=record.version,
                    newest_version_seen=record.version,  # the stored row is the newest ever stored
                    signature_valid=verify_note(record, key),
                    earlier_passages=Store.passages_on(conn, record.etpsPreentNo, passage.gate),
                    status=record.status,
                    note_type=int(record.passportTypecd),  # 1–6 from central
                    bind_type=int(record.bindTypecd) if record.bindTypecd else None,
                    direction=record.ioTypecd,
                    plate=record.vehicleNo,
                    ic_card=record.vehicleIcNo,
                    vehicle_tare_kg=record.vehicleWt,
                    frame_kg=record.vehicleFrameWt,
                    container_no=record.containerNo,
                    container_type=record.containerType,
                    container_kg=record.containerWt,
                    goods_gross_kg=record.totalGrossWt,
                    seal_required=bool(record.sealIds),
                    seal_ids=record.sealIds,
                    inventories=record.inventories,
                )
            )
            invt_nos += [i for i in record.inventories if i not in invt_nos]
        cached = Store.clearances_by_invt(conn, invt_nos)
        out = Store.passed_out(conn, invt_nos)
        inventories = []
        for invt_no in invt_nos:
            rows = cached.get(invt_no, [])
            if len(rows) != 1:  # none, or one invtNo on two clearances: not evidence
                inventories.append(
                    vr.InventoryFacts(
                        invt_no=invt_no, known=False, cancelled=False, passed_gate=invt_no in out
                    )
                )
                continue
            row = rows[0]
            r = row.record
            valid = row.readable and (row.raw in self.checker.verified or verify_record(r, key))
            seen, witnesses = Store.record_facts(conn, r.logisticsNo, r.logisticsCode)
            inventories.append(
                vr.InventoryFacts(
                    invt_no=invt_no,
                    known=True,
                    status=r.status,
                    cancelled=r.cancelled,
                    signature_valid=valid,
                    park_id=r.park_id,
                    version=r.version,
                    newest_version_seen=seen,
                    # released here, and its outputs carried the release out (not withheld or failed)
                    released_by_line=bool(witnesses.evidence())
                    and Store.carried_out(conn, r.logisticsNo, r.logisticsCode),
                    passed_gate=invt_no in out,
                )
            )
        cache = vr.GateCache(
            park_id=self.checker.park_id,
            candidates=tuple(facts),
            inventories=tuple(inventories),
            last_sync_age_s=Store.sync_age_s(conn),
            staleness_limit_s=self.checker.staleness_limit_s,
        )
        return cache, records

    async def decide(
        self,
        station: str,
        passage: vr.Passage,
        *,
        photos: tuple[str, ...] = (),
        evidence: str | None = None,
        occurred_at: datetime | None = None,
        operator: str | None = None,
        override: tuple[DecisionRecord, str] | None = None,
    ) -> PassageRecord:
        """Decide one vehicle and commit the decision, its passage and its PASSAGE event. With
        `override` (the stopped decision and the supervisor's reason) the vehicle passes only if the
        stop is one a supervisor may release (OverrideRefused otherwise: nothing is written)."""
        when = occurred_at or utc_now()
        decision_id = str(uuid.uuid4())

        def commit(conn: sqlite3.Connection) -> tuple[int, vr.Decision, NoteRecord | None, bool]:
            cache, records = self.gate_cache(conn, passage)
            decision = vr.decide(passage, cache, self.tolerance)
            note = records[0] if len(records) == 1 else None
            overridden = False
            if override is not None:
                if decision.verdict is vr.Verdict.PASS:
                    raise OverrideRefused("nothing to override: the vehicle passes as it is")
                refusal = vr.override_refusal(decision)
                if refusal is not None:
                    raise OverrideRefused(refusal)
                overridden = True
            verdict = vr.Verdict.PASS if overridden else decision.verdict
            reason = decision.reason if not overridden else f"released by {operator}: {override[1]}"  # type: ignore[index]
            row_id = Store.insert_decision(
                conn,
                decision_id=decision_id,
                station=station,
                code=passage.plate or passage.card,
                logistics_code=None,
                verdict=verdict.value,
                codes=[str(c) for c in decision.codes],
                reason=reason,
                checked=decision.checked,
                weight_kg=passage.gross_kg
                if passage.gross_kg is not None and passage.gross_kg.is_finite()
                else None,
                evidence=evidence,
                operator=operator,
                created_at=iso_now(),
            )
            if override is not None:
                Store.set_overrides(conn, row_id, override[0].id)
            inventories = note.inventories if note is not None else ()
            Store.insert_passage(
                conn,
                decision_id=decision_id,
                station=station,
                note_no=note.etpsPreentNo if note else None,
                gate=passage.gate,
                verdict=verdict.value,
                overridden=overridden,
                inventories=inventories if verdict is vr.Verdict.PASS else (),
                created_at=iso_now(),
                plate=passage.plate,
                card=passage.card,
            )
            body = EventBody(
                verdict=verdict.value,
                codes=[str(c) for c in decision.codes],
                operator=operator,
                reason=override[1][:1000] if override is not None else None,
                detail=reason[:2000],
                decision_id=decision_id,
                passage=self._passage_body(passage, decision, note, verdict, overridden, photos),
            )
            self.checker._event(conn, EventKind.PASSAGE, body, station=station, when=when)
            return row_id, decision, note, overridden

        row_id, decision, note, overridden = await self.checker.store.write(commit)
        record = DecisionRecord(
            id=row_id,
            decision_id=decision_id,
            station=station,
            code=passage.plate or passage.card,
            verdict=vr.Verdict.PASS if overridden else decision.verdict,
            codes=tuple(str(c) for c in decision.codes),
            reason=decision.reason if not overridden else f"released by {operator}",
            weight_kg=passage.gross_kg
            if passage.gross_kg is not None and passage.gross_kg.is_finite()
            else None,
            declared_kg=note.totalWt if note else None,
            evidence=evidence,
            goods=f"note {note.etpsPreentNo}: {len(note.inventories)} parcels" if note else None,
            created_at=iso_now(),
            operator=operator,
        )
        if callable(self.checker.on_commit):
            self.checker.on_commit(record)
        return PassageRecord(record, decision, note, passage, overridden)

    @staticmethod
    def _passage_body(
        passage: vr.Passage,
        decision: vr.Decision,
        note: NoteRecord | None,
        verdict: vr.Verdict,
        overridden: bool,
        photos: tuple[str, ...],
    ) -> PassageBody:
        gross = passage.gross_kg if passage.gross_kg is not None and passage.gross_kg.is_finite() else None
        goods = None
        if gross is not None and note is not None:
            goods = gross - note.vehicleWt - note.vehicleFrameWt - note.containerWt
        confidence = passage.plate_confidence
        pct = None
        if confidence is not None and 0 <= confidence <= 1:
            pct = int(Decimal(str(confidence)) * 100)
        return PassageBody(
            note=note.etpsPreentNo if note else None,
            note_version=note.version if note else None,
            passportNo=note.passportNo if note else None,
            gate=passage.gate,
            direction=passage.direction,
            verdict=verdict.value,
            overridden=overridden,
            codes=[str(c) for c in decision.codes],
            plate=passage.plate[:32] if passage.plate else None,
            plate_confidence_pct=pct,
            card=passage.card[:64] if passage.card else None,
            gross_kg=gross,
            goods_kg=goods,
            expected_kg=note.totalWt if note else None,
            containers=list(passage.containers)[:4],
            seals=list(passage.seals)[:4],
            photos=list(photos)[:8],
            inventories=list(note.inventories) if note and verdict is vr.Verdict.PASS else [],
            tailgating=passage.tailgating,
        )
