"""The gate's side of a park's reconciliation (DESIGN.md §4: every parcel released by the line leaves
through the gate, and nothing else does), beside the park report of central/reports.py:

- **released by the line, not through the gate** — with its age: normal while a vehicle is loaded,
  watched as it grows (a parcel released and never put on a vehicle, or put on one that left it);
- **through the gate without a line release** — must be empty: a vehicle left with a parcel the line
  never released;
- **on a note, never loaded** — parcels on an approved note the line has not released: the vehicle
  waits for them;
- **the note's weight against the weighbridge** — each vehicle that passed: what the bridge read,
  minus tare, frame and container, against the note's goods weight;
- **passages** — every vehicle the park's lanes decided, newest first, with the reasons of each stop.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, Field

from central.reports import Capped
from central.store import release_notes as store
from central.store.db import Database


class ReleasedNotOut(BaseModel):
    invtNo: str
    logisticsCode: str
    logisticsNo: str
    released_at: datetime | None = Field(description="the line's release, as the edge reported it")
    age_s: int | None = Field(description="seconds since then")
    open_note: str | None = Field(description="the open note it is on, if any")


class NoLineRelease(BaseModel):
    invtNo: str
    note: str
    vehicleNo: str
    passed_at: datetime


class NotLoaded(BaseModel):
    invtNo: str
    note: str
    vehicleNo: str
    noteStatus: str
    since: datetime


class NotCarriedOut(BaseModel):
    note: str | None
    station: str | None
    occurred_at: datetime
    actuation: str
    detail: str | None


class WeightCheck(BaseModel):
    note: str | None
    vehicleNo: str | None
    station: str | None
    occurred_at: datetime
    gross_kg: str | None = Field(description="the weighbridge's stable whole-vehicle reading")
    goods_kg: str | None = Field(description="gross − tare − frame − container")
    declared_goods_kg: str | None = Field(description="the note's totalGrossWt")
    difference_kg: str | None


class Passage(BaseModel):
    edge_id: str
    seq: int
    station: str | None
    occurred_at: datetime
    note: str | None
    verdict: str
    overridden: bool
    gate: str
    codes: list[str]
    reason: str | None = Field(description="why it stopped, or who released it")
    vehicleNo: str | None
    gross_kg: str | None
    containers: list[str]
    seals: list[str]
    photos: list[str] = Field(description="sha256 of the lane's images (the images stay at the edge)")
    outcome: str = Field(description="what central did with it")


class GateReport(BaseModel):
    park_id: str
    generated_at: datetime
    released_not_through_gate: Capped[ReleasedNotOut]
    through_gate_without_line_release: Capped[NoLineRelease] = Field(description="must be empty")
    on_note_not_loaded: Capped[NotLoaded]
    passes_not_carried_out: Capped[NotCarriedOut] = Field(
        description="must be empty: passes whose barrier did not let the vehicle through (it backed out,"
        " another vehicle came on, or the barrier was not confirmed); the note is spent, the parcels are in"
    )
    weights: list[WeightCheck] = Field(description="the latest passes, largest difference first")
    passages: list[Passage] = Field(description="newest first")


def _decimal(value: Any) -> Decimal | None:
    try:
        return None if value is None else Decimal(str(value))
    except InvalidOperation:
        return None


def gate_report(db: Database, *, park_id: str, now: datetime, limit: int = 100) -> GateReport:
    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    with db.snapshot() as conn:
        not_out = store.released_not_through_gate(conn, park_id=park_id, limit=limit)
        for row in not_out[1]:
            at = row["released_at"]
            row["age_s"] = int((moment - datetime.fromisoformat(at)).total_seconds()) if at else None
        passages = store.passages(conn, park_id=park_id, limit=limit)
        notes = {p["note_no"]: store.get(conn, note_no=p["note_no"]) for p in passages if p["note_no"]}
        return GateReport(
            park_id=park_id,
            generated_at=moment,
            released_not_through_gate={"total": not_out[0], "items": not_out[1]},
            through_gate_without_line_release=_capped(
                store.through_gate_without_line_release(conn, park_id=park_id, limit=limit)
            ),
            on_note_not_loaded=_capped(store.on_note_not_loaded(conn, park_id=park_id, limit=limit)),
            passes_not_carried_out=_capped(store.passes_not_carried_out(conn, park_id=park_id, limit=limit)),
            weights=_weights(passages, notes),
            passages=[_passage(p) for p in passages],
        )


def _capped(page: tuple[int, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"total": page[0], "items": page[1]}


def _weights(passages: list[dict[str, Any]], notes: dict[str, Any]) -> list[WeightCheck]:
    checks = []
    for p in passages:
        body = p["body"]
        if p["verdict"] != "PASS" or not p["note_no"]:
            continue
        note = notes.get(p["note_no"])
        declared = _decimal(note.body["head"].get("totalGrossWt")) if note is not None else None
        goods = _decimal(body.get("goods_kg"))
        difference = None if goods is None or declared is None else goods - declared
        checks.append(
            WeightCheck(
                note=p["note_no"],
                vehicleNo=body.get("plate"),
                station=p["station"],
                occurred_at=p["occurred_at"],
                gross_kg=body.get("gross_kg"),
                goods_kg=None if goods is None else str(goods),
                declared_goods_kg=None if declared is None else str(declared),
                difference_kg=None if difference is None else str(difference),
            )
        )
    return sorted(checks, key=lambda c: -abs(Decimal(c.difference_kg)) if c.difference_kg else 0)


def _passage(p: dict[str, Any]) -> Passage:
    body = p["body"]
    return Passage(
        edge_id=p["edge_id"],
        seq=p["seq"],
        station=p["station"],
        occurred_at=p["occurred_at"],
        note=p["note_no"],
        verdict=p["verdict"],
        overridden=p["overridden"],
        gate=p["gate"],
        codes=list(body.get("codes", [])),
        reason=body.get("reason"),
        vehicleNo=body.get("plate"),
        gross_kg=body.get("gross_kg"),
        containers=list(body.get("containers", [])),
        seals=list(body.get("seals", [])),
        photos=list(body.get("photos", [])),
        outcome=p["outcome"],
    )
