"""Check one physical parcel against the cache and commit the decision with its events.

This is where invariants 1 and 2 meet: inside ONE durable transaction on the store's writer thread,
the record is looked up and its signature verified, the pure rules (edge/rules.py) decide, and the
decision row, the release marker and the hash-chained events reporting it are written — before any
output moves. Looking up inside the transaction means nothing (a feed page revoking the record,
another station releasing the parcel) can change the record between the check and the commit; and
the signature check (OpenSSL, which releases the GIL) stays off the event loop that runs the lines.
A record whose stored text already passed the check in this process (at sync) is not checked again
(edge/verified.py); the decision records which it was. A record counts only for this park and at the
highest version of its clearance the edge ever stored (`versions_seen`, kept apart from the cached
row). A parcel has left if the release marker, the release ledger (edge/release_ledger.py) or a
RELEASE decision says so; a missing marker where the others say released is an ALARM event in the
decision's own transaction.
What was checked (record version, status, signature, weight, tolerance) is stored with the decision,
so the edge can prove it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge import release_ledger, rules, vehicle_rules
from edge.store import Store, new_event
from edge.verified import VerifiedTexts
from kernel.timefmt import iso_now, utc_now
from kernel.wire import EventBody, EventKind, FeedRecord, verify_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecisionRecord:
    """A committed decision, as stations, the API and MQTT see it."""

    id: int
    decision_id: str
    station: str
    code: str | None
    verdict: rules.Verdict | vehicle_rules.Verdict  # a vehicle gate's is PASS or STOP
    codes: tuple[str, ...]
    reason: str
    weight_kg: Decimal | None
    declared_kg: Decimal | None
    evidence: str | None
    goods: str | None
    created_at: str
    operator: str | None = None
    logistics_code: str | None = None
    decided_at: float = field(default_factory=time.monotonic)


@dataclass
class Checker:
    store: Store
    public_key: Ed25519PublicKey
    tolerance: rules.Tolerance
    edge_id: str
    staleness_limit_s: float
    park_id: str  # the park this edge serves: a record for another clears nothing here
    stale_policy: str = "hold"
    on_commit: object = None  # callable (DecisionRecord) -> None: poke the uplink, publish on MQTT
    verified: VerifiedTexts = field(default_factory=VerifiedTexts)  # shared with the sync
    # problems `verify_release_history` found that leave releases unaccounted for: hold every parcel
    release_history_broken: list[str] = field(default_factory=list)
    # something that says this database may not know every release it made (the agent's chain check:
    # central holds more of this edge's history than it does); None: nothing to doubt
    history_doubt: Callable[[], str | None] | None = None
    release_history: release_ledger.Verification | None = None  # the last verification, for status
    missing_markers: int = 0  # decisions that found a parcel released with its marker gone

    def cache_state(
        self, code: str | None, conn: sqlite3.Connection
    ) -> tuple[rules.CacheState, FeedRecord | None]:
        """What the cache says of `code`, read through `conn`: the decision's own transaction."""
        record: FeedRecord | None = None
        signature_valid = cached = False
        seen: int | None = None
        evidence: tuple[str, ...] = ()
        if code:
            found = Store.find(conn, code)
            if len(found) == 1:
                record, raw = found[0].record, found[0].raw
                # these very bytes passed the check before (edge/verified.py); never for a stand-in
                cached = found[0].readable and raw in self.verified
                signature_valid = cached or verify_record(record, self.public_key)
                if signature_valid and not cached:
                    self.verified.add(raw)
                seen, witnesses = Store.record_facts(conn, record.logisticsNo, record.logisticsCode)
                evidence = witnesses.evidence()
                if evidence and not witnesses.marker:
                    self._marker_missing(conn, record, evidence)
            elif len(found) > 1:
                log.warning(
                    "code matches several carriers; treated as not found",
                    extra={"code": code, "matches": len(found)},
                )
        age = Store.sync_age_s(conn)  # as of this transaction, like the record
        state = rules.CacheState(
            record=record,
            signature_valid=signature_valid,
            signature_cached=cached,
            already_released=bool(evidence),
            last_sync_age_s=age,
            staleness_limit_s=self.staleness_limit_s,
            stale_policy=self.stale_policy,
            park_id=self.park_id,
            highest_version_seen=seen,
            release_evidence=evidence,
            release_history_intact=not self.release_history_broken,
            release_history_problem=self.history_problem(),
        )
        return state, record

    def _marker_missing(
        self, conn: sqlite3.Connection, record: FeedRecord, evidence: tuple[str, ...]
    ) -> None:
        """The parcel is held (ALREADY_RELEASED) either way; this says out loud that its marker went."""
        self.missing_markers += 1
        detail = f"{record.logisticsCode}/{record.logisticsNo}: release marker missing; " + ", ".join(
            evidence
        )
        log.error("release marker missing: parcel held as already released", extra={"detail": detail})
        body = EventBody(
            logisticsCode=record.logisticsCode,
            logisticsNo=record.logisticsNo,
            reason="release_marker_missing",
            detail=detail[:2000],
        )
        self._event(conn, EventKind.ALARM, body)

    def history_problem(self) -> str | None:
        """Why no parcel can be shown, right now, not to have left before (None: it can)."""
        if self.release_history is None:
            return "still being checked"  # the ledger walk at start has not finished
        doubt = self.history_doubt() if self.history_doubt is not None else None
        return "behind central's record: re-provision" if doubt else None

    def release_status(self) -> dict[str, object]:
        """For /api/status: the release ledger's last verification and missing markers found since."""
        verified = self.release_history
        return {
            "ledger_verified": verified is not None,
            "ledger_entries": verified.entries if verified else None,
            "holding_every_parcel": bool(self.release_history_broken),
            "problems": verified.problems() if verified else [],
            "missing_markers": self.missing_markers,
        }

    async def verify_release_history(self) -> release_ledger.Verification:
        """Walk the release ledger (at start, off the event loop). Damage that can hide a release
        holds every parcel from then on, and is reported (log and an ALARM event) once."""
        try:  # on a worker thread's own connection: the walk is one read transaction
            result = await asyncio.to_thread(lambda: release_ledger.verify(self.store.reader()))
        except Exception as exc:  # unreadable, or a row of the wrong type: fail closed, every parcel held
            result = release_ledger.Verification(
                broken=[f"release ledger unreadable: {type(exc).__name__}: {exc}"]
            )
        self.release_history = result
        problems = result.problems()
        if not problems:
            log.info("release ledger verified", extra={"entries": result.entries})
            return result
        self.release_history_broken = list(result.broken or [])
        log.error(
            "release ledger damaged" if self.release_history_broken else "release markers missing",
            extra={"problems": problems, "holding_every_parcel": bool(self.release_history_broken)},
        )
        body = EventBody(
            reason="release_ledger_damaged" if self.release_history_broken else "release_marker_missing",
            detail="; ".join(problems)[:2000],
        )
        await self.store.write(lambda conn: self._event(conn, EventKind.ALARM, body))
        return result

    async def decide(
        self,
        station: str,
        obs: rules.Observation,
        *,
        evidence: str | None = None,
        occurred_at: datetime | None = None,
        operator: str | None = None,
    ) -> DecisionRecord:
        when = occurred_at or utc_now()
        decision_id = str(uuid.uuid4())

        def commit(conn: sqlite3.Connection) -> tuple[int, rules.Decision, FeedRecord | None]:
            # the writer thread serialises transactions: what is read here is what the commit covers
            cache, record = self.cache_state(obs.scanned_code, conn)
            decision = rules.decide(obs, cache, self.tolerance)
            row_id = self._commit(conn, station, obs, decision, record, decision_id, evidence, when, operator)
            return row_id, decision, record

        row_id, decision, record = await self.store.write(commit)
        result = DecisionRecord(
            id=row_id,
            decision_id=decision_id,
            station=station,
            code=obs.scanned_code,
            verdict=decision.verdict,
            codes=tuple(str(c) for c in decision.codes),
            reason=decision.reason,
            weight_kg=obs.weight_kg,
            declared_kg=record.grossWeight if record else None,
            evidence=evidence,
            goods=record.goods if record else None,
            created_at=iso_now(),
            operator=operator,
            logistics_code=record.logisticsCode if record else None,
        )
        if callable(self.on_commit):
            self.on_commit(result)
        return result

    def _commit(
        self,
        conn: sqlite3.Connection,
        station: str,
        obs: rules.Observation,
        decision: rules.Decision,
        record: FeedRecord | None,
        decision_id: str,
        evidence: str | None,
        when: datetime,
        operator: str | None,
    ) -> int:
        verdict = decision.verdict
        row_id = Store.insert_decision(
            conn,
            decision_id=decision_id,
            station=station,
            code=obs.scanned_code,
            logistics_code=record.logisticsCode if record else None,
            verdict=verdict.value,
            codes=[str(c) for c in decision.codes],
            reason=decision.reason,
            checked=decision.checked,
            weight_kg=obs.weight_kg,
            evidence=evidence,
            operator=operator,
            created_at=iso_now(),
        )
        body = EventBody(
            logisticsCode=record.logisticsCode if record else None,
            logisticsNo=record.logisticsNo if record else (obs.scanned_code or None),
            invtNo=record.invtNo if record else None,
            record_version=record.version if record else None,
            verdict=verdict.value,
            codes=[str(c) for c in decision.codes],
            weight_kg=obs.weight_kg,
            operator=operator,
            detail=decision.reason[:2000],
            decision_id=decision_id,
        )
        if verdict == rules.Verdict.RELEASE:
            assert record is not None  # rules.decide releases only with a verified record
            Store.mark_released(conn, record.logisticsNo, record.logisticsCode, row_id)
            entry = release_ledger.append(
                conn,
                logistics_no=record.logisticsNo,
                logistics_code=record.logisticsCode,
                decision_id=decision_id,
                record_version=record.version,
            )
            # the event chain central keeps anchors the ledger: it can recompute it from these
            body = body.model_copy(
                update={"decision_id": decision_id, "ledger_n": entry.n, "ledger_hash": entry.hash}
            )
            kind = EventKind.RELEASE
        elif verdict == rules.Verdict.INSPECT:
            kind = EventKind.INSPECTION_DIVERTED
        else:
            kind = EventKind.DISCREPANCY
        self._event(conn, kind, body, station=station, when=when)
        return row_id

    async def record_override(
        self, station: str, original: DecisionRecord, new: DecisionRecord, *, operator: str, reason: str
    ) -> None:
        """Audit an override: who, why, which decision it replaced, what the re-check found."""
        body = EventBody(
            logisticsNo=original.code,
            verdict=new.verdict.value,
            codes=list(original.codes),
            operator=operator,
            reason=reason[:1000],
            detail=f"overrides decision {original.decision_id}; re-check: {new.reason}"[:2000],
        )

        def work(conn: sqlite3.Connection) -> None:
            Store.set_overrides(conn, new.id, original.id)
            self._event(conn, EventKind.OVERRIDE, body, station=station)

        await self.store.write(work)

    async def record_actuation(
        self, station: str, decision: DecisionRecord, *, outcome: str, output: str | None, detail: str
    ) -> None:
        """What the outputs did for `decision`: "confirmed" (read back as commanded), "failed" (not
        confirmed: the parcel may be anywhere) or "withheld" (a release not carried out, the parcel
        sent to the safe lane). Stored with the decision and reported upstream as an actuation event
        bound to it by decision_id; central shows releases that were not confirmed."""
        body = EventBody(
            logisticsCode=decision.logistics_code,
            logisticsNo=decision.code,
            verdict=decision.verdict.value,
            decision_id=decision.decision_id,
            actuation=outcome if outcome in ("confirmed", "withheld") else "failed",
            output=output[:64] if output else None,  # a configured point name may be longer
            detail=f"{outcome}: {detail}"[:2000],
        )

        def work(conn: sqlite3.Connection) -> None:
            Store.set_actuation(conn, decision.id, outcome, detail[:2000])
            self._event(conn, EventKind.ACTUATION, body, station=station)

        await self.store.write(work)

    def _event(
        self,
        conn: sqlite3.Connection,
        kind: EventKind,
        body: EventBody,
        *,
        station: str | None = None,
        when: datetime | None = None,
    ) -> None:
        """This edge's next event, in the caller's transaction (`when`: now unless given)."""
        new_event(
            conn, edge_id=self.edge_id, kind=kind, station=station, body=body, occurred_at=when or utc_now()
        )

    async def report_fault(self, station: str | None, device: str, detail: str) -> None:
        """A device or actuation fault, as an event upstream (the decision itself is already HOLD)."""
        body = EventBody(device=device, detail=detail[:2000])
        await self.store.write(lambda conn: self._event(conn, EventKind.DEVICE_FAULT, body, station=station))
