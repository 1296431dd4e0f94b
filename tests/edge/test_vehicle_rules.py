"""The vehicle gate's pure decision (edge/vehicle_rules.py) against DESIGN.md §4 "vehicle gate".

A table with one row per code (and the cases around each), the override policy case by case, and
hypothesis properties: PASS only when an oracle written here from the raw inputs says every
precondition holds; a fault added to a passing vehicle always stops it; no override while a customs
code stands (nor for a vehicle whose note or inventories are not good); decide() never raises; the
weight rule is symmetric around the expected gross and inclusive at the allowed difference.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edge import vehicle_rules
from edge.vehicle_rules import (
    RULES,
    Code,
    Decision,
    GateCache,
    GateTolerance,
    InventoryFacts,
    NoteFacts,
    Passage,
    StopClass,
    Verdict,
    WeightLimit,
    decide,
    explain,
    normalise_plate,
    overridable,
    override_refusal,
)
from kernel import containers

C = Code
PLATE = "沪A·12345"
OTHER_PLATE = "沪B54321"
CARD = "E28011606000020"
OTHER_CARD = "E28011606000099"
BOX = "CSQU3054383"  # ISO 6346's own example
OTHER_BOX = "MSCU123456" + str(containers.check_digit("MSCU123456"))
BAD_BOX = "CSQU3054384"  # check digit wrong
INVTS = ("INV0001", "INV0002")
# tare 15000 + frame 5000 + container 2200 + goods 8000 = 30200 expected; ±151 (0.5 %); override ±604 (2 %)
GROSS = Decimal("30200")
ALLOWED = Decimal("151")
TOL = GateTolerance(
    absolute_kg=Decimal("50"),
    percent=Decimal("0.5"),
    override_limit=WeightLimit(absolute_kg=Decimal("200"), percent=Decimal("2")),
)


def note(**over: Any) -> NoteFacts:
    fields: dict[str, Any] = {
        "note_no": "HF2025000001",
        "passport_no": "HF310125E000001",
        "park_id": "P1",
        "version": 3,
        "newest_version_seen": 3,
        "signature_valid": True,
        "earlier_passages": 0,
        "status": "1",
        "note_type": 1,
        "bind_type": 1,
        "direction": "E",
        "plate": PLATE,
        "ic_card": CARD,
        "vehicle_tare_kg": Decimal("15000"),
        "frame_kg": Decimal("5000"),
        "container_no": BOX,
        "container_kg": Decimal("2200"),
        "goods_gross_kg": Decimal("8000"),
        "seal_required": True,
        "inventories": INVTS,
    }
    fields.update(over)
    return NoteFacts(**fields)


def invt(invt_no: str, **over: Any) -> InventoryFacts:
    fields: dict[str, Any] = {
        "invt_no": invt_no,
        "known": True,
        "status": "800",
        "cancelled": False,
        "signature_valid": True,
        "park_id": "P1",
        "version": 2,
        "newest_version_seen": 2,
        "released_by_line": True,
        "passed_gate": False,
    }
    fields.update(over)
    return InventoryFacts(**fields)


def gate_cache(**over: Any) -> GateCache:
    fields: dict[str, Any] = {
        "park_id": "P1",
        "candidates": (note(),),
        "inventories": tuple(invt(i) for i in INVTS),
        "last_sync_age_s": 30.0,
        "staleness_limit_s": 3600.0,
    }
    fields.update(over)
    return GateCache(**fields)


def passage(**over: Any) -> Passage:
    fields: dict[str, Any] = {
        "direction": "E",
        "gate": "single",
        "plate": "沪a12345",
        "plate_confidence": 0.97,
        "card": CARD,
        "card_reader_configured": True,
        "gross_kg": GROSS,
        "containers": (BOX, BOX),
        "seals": ("SL000123|SL000124",),
        "device_faults": (),
        "tailgating": False,
    }
    fields.update(over)
    return Passage(**fields)


@dataclass
class Row:
    id: str
    codes: tuple[Code, ...]
    note: dict[str, Any] = field(default_factory=dict)
    passage: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    invts: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # None: no facts at all
    tol: GateTolerance = TOL

    def run(self) -> Decision:
        facts = [invt(i, **over) for i in INVTS if (over := self.invts.get(i, {})) is not None]
        cache_fields: dict[str, Any] = {"candidates": (note(**self.note),), "inventories": tuple(facts)}
        cache_fields.update(self.cache)
        return decide(passage(**self.passage), gate_cache(**cache_fields), self.tol)


# an empty-vehicle note: expects 15000 + 5000 + 2200 = 22200 kg, ±111 kg
EMPTY = {"note_type": 6, "bind_type": None, "inventories": (), "goods_gross_kg": Decimal("0")}

TABLE = [
    Row("clean", ()),
    # which note
    Row("no note", (C.NO_NOTE,), cache={"candidates": ()}),
    Row("two open notes", (C.AMBIGUOUS_NOTE,), cache={"candidates": (note(), note(note_no="HF2"))}),
    Row(
        "two notes, none open",
        (C.AMBIGUOUS_NOTE,),
        cache={"candidates": (note(status="2"), note(note_no="HF2", status="5"))},
    ),
    Row(
        "an open note beside finished ones",
        (C.AMBIGUOUS_NOTE,),
        cache={"candidates": (note(status="2"), note(), note(status="6"))},
    ),
    # trust
    Row("signature invalid", (C.SIGNATURE_INVALID,), note={"signature_valid": False}),
    Row(
        "bad signature hides everything read from the note",
        (C.SIGNATURE_INVALID,),
        note={"signature_valid": False, "status": "0", "direction": "I", "plate": OTHER_PLATE},
        passage={"gross_kg": Decimal("90000")},
    ),
    Row("another park's note", (C.FOREIGN_PARK,), note={"park_id": "P2"}),
    Row(
        "another park's note says nothing here",
        (C.FOREIGN_PARK,),
        note={"park_id": "P2", "status": "5", "seal_required": True},
        passage={"seals": (), "containers": ()},
    ),
    Row("older than a version seen", (C.ROLLED_BACK,), note={"newest_version_seen": 4}),
    Row(
        "an old copy says nothing",
        (C.ROLLED_BACK,),
        note={"newest_version_seen": 4, "status": "0", "plate": OTHER_PLATE},
        invts={"INV0001": {"status": "120"}},
    ),
    Row("no version mark", (C.ROLLED_BACK,), note={"newest_version_seen": None}),
    Row("newer than the mark", (), note={"newest_version_seen": 2}),
    # status and use
    Row("applied, not approved", (C.NOTE_NOT_APPROVED,), note={"status": "0"}),
    *(
        Row(f"unknown status {s!r}", (C.NOTE_NOT_APPROVED,), note={"status": s})
        for s in ("7", "", " 1", "01")
    ),
    Row(
        "empty-vehicle note listing inventories",
        (C.NOTE_NOT_APPROVED,),
        note={**EMPTY, "inventories": INVTS},
        passage={"gross_kg": Decimal("22200")},
    ),
    Row("deleted", (C.NOTE_DELETED_OR_VOIDED,), note={"status": "5"}),
    Row("voided", (C.NOTE_DELETED_OR_VOIDED,), note={"status": "6"}),
    Row("passed", (C.NOTE_ALREADY_PASSED,), note={"status": "2"}),
    Row("passed the second gate", (C.NOTE_ALREADY_PASSED,), note={"status": "4"}, passage={"gate": "second"}),
    Row("used here, status not back yet", (C.NOTE_ALREADY_PASSED,), note={"earlier_passages": 1}),
    Row(
        "used at the second gate",
        (C.NOTE_ALREADY_PASSED,),
        note={"status": "3", "earlier_passages": 1},
        passage={"gate": "second"},
    ),
    Row(
        "status 2 and used here: one code",
        (C.NOTE_ALREADY_PASSED,),
        note={"status": "2", "earlier_passages": 2},
    ),
    Row("first gate", (), passage={"gate": "first"}),
    Row("second gate after the first", (), note={"status": "3"}, passage={"gate": "second"}),
    Row("second gate before the first", (C.WRONG_GATE_ORDER,), passage={"gate": "second"}),
    Row("first gate twice (status)", (C.WRONG_GATE_ORDER,), note={"status": "3"}, passage={"gate": "first"}),
    Row(
        "first gate twice (ledger)",
        (C.WRONG_GATE_ORDER,),
        note={"earlier_passages": 1},
        passage={"gate": "first"},
    ),
    Row("first-gate note at a single gate", (C.WRONG_GATE_ORDER,), note={"status": "3"}),
    Row("direction", (C.DIRECTION_MISMATCH,), passage={"direction": "I"}),
    Row("entering on an entry note", (), note={"direction": "I"}, passage={"direction": "I"}),
    # identity
    Row("other plate", (C.PLATE_MISMATCH,), passage={"plate": OTHER_PLATE}),
    Row("plate not read", (C.PLATE_MISMATCH,), passage={"plate": None}),
    Row("blank plate", (C.PLATE_MISMATCH,), passage={"plate": " -·"}),
    Row("plate below confidence", (C.PLATE_MISMATCH,), passage={"plate_confidence": 0.89}),
    Row("plate at the confidence threshold", (), passage={"plate_confidence": 0.9}),
    Row("plate without confidence", (C.PLATE_MISMATCH,), passage={"plate_confidence": None}),
    Row("plate confidence NaN", (C.PLATE_MISMATCH,), passage={"plate_confidence": math.nan}),
    Row("plate confidence as percent", (C.PLATE_MISMATCH,), passage={"plate_confidence": 97.0}),
    Row("note names no plate", (C.PLATE_MISMATCH,), note={"plate": " "}),
    Row("Chinese letter differs", (C.PLATE_MISMATCH,), passage={"plate": "苏A12345"}),
    *(
        Row(f"plate spelt {p!r}", (), passage={"plate": p})
        for p in ("沪A 12345", "沪a-12345", "沪A.12345", "沪A・12345")
    ),
    Row("other card", (C.CARD_MISMATCH,), passage={"card": OTHER_CARD}),
    Row("no card read", (C.CARD_MISMATCH,), passage={"card": None}),
    Row("card spelt with spaces", (), passage={"card": "e280 1160 6000 020"}),
    Row("no reader configured", (), passage={"card": OTHER_CARD, "card_reader_configured": False}),
    Row("note without card", (), note={"ic_card": None}, passage={"card": OTHER_CARD}),
    # weight
    *(
        Row(f"no weight {w!r}", (C.NO_WEIGHT,), passage={"gross_kg": w})
        for w in (None, Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-1"), Decimal("0"))
    ),
    Row("heavy", (C.WEIGHT_OUT_OF_TOLERANCE,), passage={"gross_kg": GROSS + ALLOWED + Decimal("0.01")}),
    Row("light", (C.WEIGHT_OUT_OF_TOLERANCE,), passage={"gross_kg": GROSS - ALLOWED - Decimal("0.01")}),
    Row("heavy at the edge", (), passage={"gross_kg": GROSS + ALLOWED}),
    Row("light at the edge", (), passage={"gross_kg": GROSS - ALLOWED}),
    Row("absurd weight", (C.WEIGHT_OUT_OF_TOLERANCE,), passage={"gross_kg": Decimal("1E+999999")}),
    Row("tiny weight", (C.WEIGHT_OUT_OF_TOLERANCE,), passage={"gross_kg": Decimal("1E-999999")}),
    Row("empty vehicle", (), note=EMPTY, passage={"gross_kg": Decimal("22200")}),
    Row(
        "empty vehicle not empty",
        (C.EMPTY_VEHICLE_NOT_EMPTY,),
        note=EMPTY,
        passage={"gross_kg": Decimal("22312")},
    ),
    Row(
        "empty vehicle light",
        (C.WEIGHT_OUT_OF_TOLERANCE,),
        note=EMPTY,
        passage={"gross_kg": Decimal("22088")},
    ),
    Row(
        "empty vehicle ignores declared goods",
        (C.EMPTY_VEHICLE_NOT_EMPTY,),
        note={**EMPTY, "goods_gross_kg": 8000},
    ),
    # container and seal
    Row("other container", (C.CONTAINER_MISMATCH,), passage={"containers": (OTHER_BOX,)}),
    Row("check digit fails", (C.CONTAINER_MISMATCH,), passage={"containers": (BAD_BOX,)}),
    Row("front and back differ", (C.CONTAINER_MISMATCH,), passage={"containers": (BOX, OTHER_BOX)}),
    Row("no container read", (C.CONTAINER_MISMATCH,), passage={"containers": ()}),
    Row("blank container read", (C.CONTAINER_MISMATCH,), passage={"containers": (" ", "")}),
    Row(
        "container on a vehicle whose note has none",
        (C.CONTAINER_MISMATCH,),
        note={"container_no": None, "container_kg": Decimal("0"), "goods_gross_kg": Decimal("10200")},
    ),
    Row(
        "no container",
        (),
        note={"container_no": None, "container_kg": 0, "goods_gross_kg": 10200, "seal_required": False},
        passage={"containers": (), "seals": ()},
    ),
    Row(
        "note's own number fails",
        (C.CONTAINER_MISMATCH,),
        note={"container_no": BAD_BOX},
        passage={"containers": (BAD_BOX,)},
    ),
    Row("container number as printed", (), passage={"containers": ("csqu 305438-3", "CSQU/3054383")}),
    Row(
        "box read as its declared size-type",
        (),
        note={"container_type": "22G1"},
        passage={"container_types": ("22g1",)},
    ),
    Row(
        "a 20 ft box declared as a 45 ft one (its tare)",
        (C.CONTAINER_MISMATCH,),
        note={"container_type": "L5G1"},
        passage={"container_types": ("22G1",)},
    ),
    Row("seal missing", (C.SEAL_MISSING,), passage={"seals": ()}),
    Row("blank seal", (C.SEAL_MISSING,), passage={"seals": ("  ",)}),
    Row("seal not required", (), note={"seal_required": False}, passage={"seals": ()}),
    Row("named seals read", (), note={"seal_ids": ("ES001", "ES002")}, passage={"seals": ("ES002", "ES001")}),
    Row(
        "another seal than the note names",
        (C.SEAL_MISSING,),
        note={"seal_ids": ("ES001", "ES002")},
        passage={"seals": ("ES001", "ES999")},
    ),
    Row(
        "a named seal without the required flag",
        (C.SEAL_MISSING,),
        note={"seal_required": False, "seal_ids": ("ES001",)},
        passage={"seals": ()},
    ),
    # inventories
    *(
        Row(f"inventory {why}", (C.INVENTORY_NOT_RELEASABLE,), invts={"INV0002": over})
        for why, over in (
            ("not cleared", {"status": "399"}),
            ("closed", {"status": "899"}),
            ("no status", {"status": None}),
            ("cancelled", {"cancelled": True}),
            ("signature invalid", {"signature_valid": False}),
            ("unknown", {"known": False}),
            ("another park's", {"park_id": "P2"}),
            ("rolled back", {"newest_version_seen": 3}),
            ("without version mark", {"newest_version_seen": None}),
        )
    ),
    Row("inventory without facts", (C.INVENTORY_NOT_RELEASABLE,), invts={"INV0001": None}),
    Row(
        "contradicting facts for one inventory",
        (C.INVENTORY_NOT_RELEASABLE,),
        cache={"inventories": (invt("INV0001"), invt("INV0002"), invt("INV0002", status="500"))},
    ),
    Row(
        "not released by the line", (C.NOT_RELEASED_BY_LINE,), invts={"INV0001": {"released_by_line": False}}
    ),
    Row(
        "line records disagree",
        (C.NOT_RELEASED_BY_LINE,),
        cache={"inventories": (invt("INV0001"), invt("INV0002"), invt("INV0002", released_by_line=False))},
    ),
    Row("already out", (C.INVENTORY_ALREADY_OUT,), invts={"INV0002": {"passed_gate": True}}),
    Row(
        "goods registered at the gate: no inventories",
        (C.INVENTORY_NOT_RELEASABLE,),
        note={"note_type": 5, "bind_type": None, "inventories": ()},
    ),
    # lane
    Row("tailgating", (C.TAILGATING,), passage={"tailgating": True}),
    *(
        Row(f"stale cache {age!r}", (C.STALE_CACHE,), cache={"last_sync_age_s": age})
        for age in (3600.0, 7200.0, None, math.nan, -1.0, math.inf)
    ),
    Row("barrier down", (C.DEVICE_FAULT,), passage={"device_faults": ("barrier",)}),
    Row("unnamed device down", (C.DEVICE_FAULT,), passage={"device_faults": (" ",)}),
    Row("plate camera down", (C.DEVICE_FAULT,), passage={"device_faults": ("plate_camera",), "plate": None}),
    Row("card reader down", (C.DEVICE_FAULT,), passage={"device_faults": ("card_reader",), "card": None}),
    Row(
        "container camera down",
        (C.DEVICE_FAULT,),
        passage={"device_faults": ("container_camera",), "containers": ()},
    ),
    Row("seal reader down", (C.DEVICE_FAULT,), passage={"device_faults": ("seal_reader",), "seals": ()}),
    Row(
        "a camera down still compares what it read",
        (C.PLATE_MISMATCH, C.DEVICE_FAULT),
        passage={"device_faults": ("plate_camera",), "plate": OTHER_PLATE},
    ),
    Row(
        "weighbridge down",
        (C.NO_WEIGHT, C.DEVICE_FAULT),
        passage={"device_faults": ("weighbridge",), "gross_kg": None},
    ),
    # several at once: every rule reports
    Row(
        "three problems",
        (C.PLATE_MISMATCH, C.SEAL_MISSING, C.TAILGATING),
        passage={"plate": OTHER_PLATE, "seals": (), "tailgating": True},
    ),
    Row(
        "everything about the vehicle",
        (
            C.DIRECTION_MISMATCH,
            C.PLATE_MISMATCH,
            C.CARD_MISMATCH,
            C.WEIGHT_OUT_OF_TOLERANCE,
            C.CONTAINER_MISMATCH,
        ),
        passage={
            "direction": "I",
            "plate": OTHER_PLATE,
            "card": OTHER_CARD,
            "gross_kg": Decimal("40000"),
            "containers": (OTHER_BOX,),
        },
    ),
]


@pytest.mark.parametrize("row", TABLE, ids=[r.id for r in TABLE])
def test_table(row: Row) -> None:
    decision = row.run()
    assert decision.codes == row.codes, [f.detail for f in decision.findings]
    assert (decision.verdict is Verdict.PASS) == (row.codes == ())
    assert decision.reason
    for finding in decision.findings:
        assert finding.text and finding.detail
    json.dumps(decision.checked, allow_nan=False)


def test_table_has_a_row_producing_exactly_each_code() -> None:
    exact = {row.codes[0] for row in TABLE if len(row.codes) == 1}
    assert exact == set(Code)


# --- override policy ------------------------------------------------------------------------------

SEALED_NO_WEIGHT = {"device_faults": ("weighbridge",), "gross_kg": None}
OVERRIDES = [
    Row("weight slightly out", (C.WEIGHT_OUT_OF_TOLERANCE,), passage={"gross_kg": GROSS + Decimal("604")}),
    Row(
        "weight light, slightly out",
        (C.WEIGHT_OUT_OF_TOLERANCE,),
        passage={"gross_kg": GROSS - Decimal("604")},
    ),
    Row(
        "card reader down, plate matches",
        (C.DEVICE_FAULT,),
        passage={"device_faults": ("card_reader",), "card": None},
    ),
    Row(
        "plate camera down, card matches",
        (C.DEVICE_FAULT,),
        passage={"device_faults": ("plate_camera",), "plate": None},
    ),
    Row(
        "seal reader down, no seal required",
        (C.DEVICE_FAULT,),
        note={"seal_required": False},
        passage={"device_faults": ("seal_reader",)},
    ),
]
NOT_OVERRIDABLE = [
    Row("passing", ()),
    Row(
        "weight beyond the override limit",
        (C.WEIGHT_OUT_OF_TOLERANCE,),
        passage={"gross_kg": GROSS + Decimal("604.01")},
    ),
    Row(
        "no override limit configured",
        (C.WEIGHT_OUT_OF_TOLERANCE,),
        passage={"gross_kg": GROSS + Decimal("152")},
        tol=GateTolerance(absolute_kg=Decimal("50"), percent=Decimal("0.5")),
    ),
    Row(
        "empty vehicle too heavy",
        (C.EMPTY_VEHICLE_NOT_EMPTY,),
        note=EMPTY,
        passage={"gross_kg": Decimal("22312")},
    ),
    Row("no weight, weighbridge up", (C.NO_WEIGHT,), passage={"gross_kg": None}),
    # the seal ids are what the enterprise typed: a read seal does not stand in for the weight
    Row("weighbridge down, sealed container", (C.NO_WEIGHT, C.DEVICE_FAULT), passage=SEALED_NO_WEIGHT),
    Row(
        "weighbridge down, container not sealed",
        (C.NO_WEIGHT, C.DEVICE_FAULT),
        note={"seal_required": False},
        passage=SEALED_NO_WEIGHT,
    ),
    Row(
        "weighbridge down, no container",
        (C.NO_WEIGHT, C.DEVICE_FAULT),
        note={"container_no": None, "container_kg": 0, "goods_gross_kg": 10200},
        passage={**SEALED_NO_WEIGHT, "containers": ()},
    ),
    Row(
        "weighbridge down, empty vehicle",
        (C.NO_WEIGHT, C.DEVICE_FAULT),
        note=EMPTY,
        passage=SEALED_NO_WEIGHT,
    ),
    Row(
        "card reader down, plate unsure",
        (C.PLATE_MISMATCH, C.DEVICE_FAULT),
        passage={"device_faults": ("card_reader",), "card": None, "plate_confidence": 0.5},
    ),
    Row(
        "card reader and plate camera down",
        (C.DEVICE_FAULT,),
        passage={"device_faults": ("card_reader", "plate_camera"), "card": None, "plate": None},
    ),
    Row(
        "plate camera down, no card reader",
        (C.DEVICE_FAULT,),
        passage={"device_faults": ("plate_camera",), "plate": None, "card_reader_configured": False},
    ),
    Row(
        "plate camera down, note has no card",
        (C.DEVICE_FAULT,),
        note={"ic_card": None},
        passage={"device_faults": ("plate_camera",), "plate": None},
    ),
    Row(
        "seal reader down, seal required",
        (C.DEVICE_FAULT,),
        passage={"device_faults": ("seal_reader",), "seals": ()},
    ),
    Row(
        "container camera down",
        (C.DEVICE_FAULT,),
        passage={"device_faults": ("container_camera",), "containers": ()},
    ),
    Row("barrier down", (C.DEVICE_FAULT,), passage={"device_faults": ("barrier",)}),
    Row(
        "slightly out, but not released by the line",
        (C.WEIGHT_OUT_OF_TOLERANCE, C.NOT_RELEASED_BY_LINE),
        passage={"gross_kg": GROSS + Decimal("300")},
        invts={"INV0001": {"released_by_line": False}},
    ),
    Row(
        "card reader down, plate fine, note deleted",
        (C.NOTE_DELETED_OR_VOIDED, C.DEVICE_FAULT),
        note={"status": "5"},
        passage={"device_faults": ("card_reader",), "card": None},
    ),
    Row(
        "sealed, weighbridge down, note not genuine",
        (C.SIGNATURE_INVALID, C.NO_WEIGHT, C.DEVICE_FAULT),
        note={"signature_valid": False},
        passage=SEALED_NO_WEIGHT,
    ),
]


@pytest.mark.parametrize("row", OVERRIDES, ids=[r.id for r in OVERRIDES])
def test_overridable(row: Row) -> None:
    decision = row.run()
    assert decision.codes == row.codes
    assert decision.verdict is Verdict.STOP
    assert overridable(decision), override_refusal(decision)
    assert override_refusal(decision) is None


@pytest.mark.parametrize("row", NOT_OVERRIDABLE, ids=[r.id for r in NOT_OVERRIDABLE])
def test_not_overridable(row: Row) -> None:
    decision = row.run()
    assert decision.codes == row.codes
    assert not overridable(decision)
    assert override_refusal(decision)


def test_code_classes() -> None:
    operational = {c for c in Code if c.stop_class is StopClass.OPERATIONAL}
    assert operational == {C.WEIGHT_OUT_OF_TOLERANCE, C.NO_WEIGHT, C.DEVICE_FAULT}


def test_a_hand_built_decision_cannot_smuggle_a_customs_code() -> None:
    decision = Row("no note", (C.NO_NOTE,), cache={"candidates": ()}).run()
    forged = decision.model_copy(
        update={"findings": tuple(f.model_copy(update={"override_refused": None}) for f in decision.findings)}
    )
    assert not overridable(forged)


# --- facts, texts, models -------------------------------------------------------------------------


def test_checked_carries_the_weight_reconciliation() -> None:
    decision = Row("heavy", (), passage={"gross_kg": Decimal("30400.5")}).run()
    weight = decision.checked["weight"]
    assert weight["expected_gross_kg"] == "30200.00"
    assert weight["declared_goods_kg"] == "8000.00"
    assert weight["measured_goods_kg"] == "8200.50"
    assert weight["difference_kg"] == "200.50"
    assert weight["allowed_kg"] == "151.00"
    assert weight["override_allowed_kg"] == "604.00"
    assert decision.checked["closes_note"] is False
    assert Row("clean", ()).run().checked["closes_note"] is True


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("沪A·12345", "沪A12345"),
        ("沪a 12345", "沪A12345"),
        ("粤Z-1234港", "粤Z1234港"),
        ("京AD.12345", "京AD12345"),
        ("川A\u300012345", "川A12345"),
        ("ß-x", "ßX"),  # non-ASCII kept as is, not upper-cased to SS
        ("  ", ""),
    ],
)
def test_normalise_plate(raw: str, normal: str) -> None:
    assert normalise_plate(raw) == normal


def test_explain_falls_back_to_the_generic_line() -> None:
    for code in Code:
        assert explain(code)
    assert explain(C.NOTE_NOT_APPROVED, note="HF1", status="0") == "Note HF1 not approved (status 0)"
    assert explain(C.NOTE_NOT_APPROVED, note="HF1") == "Release note not approved"


def test_models_are_frozen_and_validated() -> None:
    lane = passage()
    with pytest.raises(ValidationError):
        lane.tailgating = True  # type: ignore[misc]
    with pytest.raises(ValidationError):
        passage(tailgate=True)  # a misspelt fault must not vanish
    with pytest.raises(ValidationError):
        note(vehicle_tare_kg=Decimal("NaN"))
    with pytest.raises(ValidationError):
        note(goods_gross_kg=Decimal("-1"))
    with pytest.raises(ValidationError):
        note(status_code="1")
    with pytest.raises(ValidationError):
        GateTolerance(
            absolute_kg=Decimal("50"),
            percent=Decimal("1"),
            override_limit=WeightLimit(absolute_kg=Decimal("40"), percent=Decimal("2")),
        )
    with pytest.raises(ValidationError):
        GateTolerance(absolute_kg=Decimal("50"), percent=Decimal("1"), plate_min_confidence=90)
    assert GateTolerance(absolute_kg=Decimal(0), percent=Decimal(0)).plate_min_confidence == 0.9


def test_module_is_pure() -> None:
    """No I/O and no clock: the standard library's value types, pydantic, the kernel and the parcel
    rules (pure too: the sync-age words and freshness are shared)."""
    tree = ast.parse(Path(vehicle_rules.__file__).read_text())
    modules = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    imported = {m.split(".")[0] for m in modules if m != "edge.rules"}
    assert imported <= {
        "__future__",
        "math",
        "collections",
        "decimal",
        "enum",
        "typing",
        "pydantic",
        "kernel",
    }


# --- the oracle: the PASS preconditions read from the raw inputs ----------------------------------

_SQUASH = re.compile(r"[\s\-‐‑－.·．・]")
_ASCII_UP = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WIDE = Context(prec=200, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[])


def squash(text: str | None) -> str:
    return _SQUASH.sub("", text or "").translate(_ASCII_UP)


def the_note(cache: GateCache) -> NoteFacts | None:
    """The single note found."""
    return cache.candidates[0] if len(cache.candidates) == 1 else None


def note_and_inventories_ok(p: Passage, cache: GateCache) -> bool:
    """What no supervisor may ever override: a note approved for this gate, genuine, current, this
    park's and unused, whose inventories are all releasable, released by the line and still here."""
    n = the_note(cache)
    if n is None or not n.signature_valid or n.park_id != cache.park_id:
        return False
    if n.newest_version_seen is None or n.version < n.newest_version_seen:
        return False
    if n.status != ("3" if p.gate == "second" else "1") or n.earlier_passages != 0:
        return False
    if n.note_type == 6 and n.inventories:
        return False
    if n.note_type != 6 and not n.inventories:
        return False  # goods no clearance covers
    for number in n.inventories:
        facts = [f for f in cache.inventories if f.invt_no == number]
        if not facts:
            return False
        for f in facts:
            if not (f.known and f.status == "800" and not f.cancelled and f.signature_valid):
                return False
            if f.park_id != cache.park_id or f.version is None or f.newest_version_seen is None:
                return False
            if f.version < f.newest_version_seen or not f.released_by_line or f.passed_gate:
                return False
    return True


def weight_ok(p: Passage, n: NoteFacts, tol: GateTolerance) -> bool:
    g = p.gross_kg
    if g is None or not g.is_finite() or g <= 0:
        return False
    with localcontext(_WIDE):
        goods = 0 if n.note_type == 6 else n.goods_gross_kg
        expected = n.vehicle_tare_kg + n.frame_kg + n.container_kg + goods
        return abs(g - expected) <= max(tol.absolute_kg, expected * tol.percent / 100)


def oracle_pass(p: Passage, cache: GateCache, tol: GateTolerance) -> bool:
    if not note_and_inventories_ok(p, cache):
        return False
    n = the_note(cache)
    assert n is not None
    if n.direction != p.direction or p.tailgating or p.device_faults:
        return False
    conf = p.plate_confidence
    if conf is None or not (0 <= conf <= 1) or conf < tol.plate_min_confidence:
        return False
    if not squash(p.plate) or squash(p.plate) != squash(n.plate):
        return False
    if p.card_reader_configured and squash(n.ic_card) and squash(p.card) != squash(n.ic_card):
        return False
    if not weight_ok(p, n, tol):
        return False
    box = containers.normalise(n.container_no or "")
    reads = [r for r in (containers.normalise(c) for c in p.containers) if r]
    if box and not (containers.is_valid(box) and reads and all(r == box for r in reads)):
        return False
    if not box and reads:
        return False
    if n.seal_required and not any(s.strip() for s in p.seals):
        return False
    age = cache.last_sync_age_s
    return age is not None and math.isfinite(age) and 0 <= age < cache.staleness_limit_s


# --- generators -----------------------------------------------------------------------------------

weights = st.decimals(min_value=0, max_value=60000, places=2)
measured = st.one_of(
    st.none(),
    st.decimals(min_value=-100, max_value=90000, places=3),
    st.sampled_from([Decimal("NaN"), Decimal("sNaN"), Decimal("-Infinity"), Decimal("Infinity")]),
    st.sampled_from([Decimal("1E+999999"), Decimal("-1E+999999"), Decimal("1E-999999"), Decimal("0")]),
    st.decimals(allow_nan=True, allow_infinity=True),
)
statuses = st.sampled_from(["0", "1", "1", "1", "2", "3", "3", "4", "5", "6", "9", ""])
plates = st.sampled_from([PLATE, "沪A12345", "沪a 12345", OTHER_PLATE, "", " ", "ＡＢ", "沪A1234"])
cards = st.sampled_from([CARD, OTHER_CARD, "e280-1160-6000-020", "", None])
boxes = st.sampled_from([BOX, OTHER_BOX, BAD_BOX, "csqu 305438-3", "", "12345", None])
invt_pool = st.sampled_from(["INV0001", "INV0002", "INV0003", ""])
device_names = st.sampled_from(
    ["plate_camera", "card_reader", "weighbridge", "container_camera", "seal_reader", "barrier", " "]
)
ages = st.one_of(st.none(), st.floats(allow_nan=True), st.floats(min_value=0, max_value=5000))
tolerances = st.sampled_from(
    [
        TOL,
        GateTolerance(absolute_kg=Decimal("0"), percent=Decimal("0")),
        GateTolerance(
            absolute_kg=Decimal("20"),
            percent=Decimal("1"),
            override_limit=WeightLimit(absolute_kg=Decimal("20"), percent=Decimal("1")),
            plate_min_confidence=0.0,
        ),
    ]
)


@st.composite
def any_notes(draw: st.DrawFn) -> NoteFacts:
    return note(
        note_no=draw(st.sampled_from(["HF1", "HF2"])),
        park_id=draw(st.sampled_from(["P1", "P1", "P2"])),
        version=draw(st.integers(1, 4)),
        newest_version_seen=draw(st.one_of(st.none(), st.integers(1, 4))),
        signature_valid=draw(st.booleans()),
        earlier_passages=draw(st.integers(0, 2)),
        status=draw(statuses),
        note_type=draw(st.integers(1, 6)),
        direction=draw(st.sampled_from(["I", "E"])),
        plate=draw(plates),
        ic_card=draw(cards),
        vehicle_tare_kg=draw(weights),
        frame_kg=draw(weights),
        container_no=draw(boxes),
        container_kg=draw(weights),
        goods_gross_kg=draw(weights),
        seal_required=draw(st.booleans()),
        inventories=tuple(draw(st.lists(invt_pool, max_size=3))),
    )


@st.composite
def any_inventory(draw: st.DrawFn) -> InventoryFacts:
    return invt(
        draw(invt_pool),
        known=draw(st.booleans()),
        status=draw(st.sampled_from(["800", "800", "399", "899", None, "500"])),
        cancelled=draw(st.booleans()),
        signature_valid=draw(st.booleans()),
        park_id=draw(st.sampled_from(["P1", "P2", None])),
        version=draw(st.one_of(st.none(), st.integers(1, 3))),
        newest_version_seen=draw(st.one_of(st.none(), st.integers(1, 3))),
        released_by_line=draw(st.booleans()),
        passed_gate=draw(st.booleans()),
    )


@st.composite
def any_passage(draw: st.DrawFn) -> Passage:
    return passage(
        direction=draw(st.sampled_from(["I", "E"])),
        gate=draw(st.sampled_from(["single", "first", "second"])),
        plate=draw(st.one_of(st.none(), plates, st.text(max_size=9))),
        plate_confidence=draw(st.one_of(st.none(), st.floats(allow_nan=True), st.floats(0, 1))),
        card=draw(cards),
        card_reader_configured=draw(st.booleans()),
        gross_kg=draw(measured),
        containers=tuple(draw(st.lists(st.one_of(boxes.filter(bool), st.text(max_size=12)), max_size=2))),
        seals=tuple(draw(st.lists(st.sampled_from(["SL1", " ", "SL1|SL2"]), max_size=2))),
        device_faults=tuple(draw(st.lists(device_names, max_size=2))),
        tailgating=draw(st.booleans()),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Passage, GateCache, GateTolerance]:
    cache = gate_cache(
        candidates=tuple(draw(st.lists(any_notes(), max_size=3))),
        inventories=tuple(draw(st.lists(any_inventory(), max_size=4))),
        last_sync_age_s=draw(ages),
        staleness_limit_s=draw(st.sampled_from([3600.0, 0.0, math.inf])),
    )
    return draw(any_passage()), cache, draw(tolerances)


DIMENSIONS = (
    "candidates",
    "status",
    "signature",
    "park",
    "version",
    "earlier",
    "type",
    "note_direction",
    "plate_note",
    "card_note",
    "weights",
    "container_note",
    "seal_required",
    "inventories",
    "invt_facts",
    "gate",
    "direction",
    "plate",
    "confidence",
    "card",
    "reader",
    "gross",
    "containers",
    "seals",
    "faults",
    "tailgating",
    "age",
)


@st.composite
def near_clean(draw: st.DrawFn) -> tuple[Passage, GateCache, GateTolerance]:
    """A passing vehicle with up to three dimensions drawn arbitrarily: both sides of every condition
    and pairs of them, so the oracle is exercised where PASS and STOP meet."""
    broken = draw(st.sets(st.sampled_from(DIMENSIONS), max_size=3))
    wild_note, (wild_p, wild_cache, _) = draw(any_notes()), draw(scenarios())
    tol = draw(tolerances)

    def pick(dim: str, clean: Any, arbitrary: Any) -> Any:
        return arbitrary if dim in broken else clean

    edge = (
        draw(st.sampled_from([Decimal(0), ALLOWED, -ALLOWED, Decimal("0.01")])) if tol is TOL else Decimal(0)
    )
    n = note(
        status=pick("status", "1", wild_note.status),
        signature_valid=pick("signature", True, wild_note.signature_valid),
        park_id=pick("park", "P1", wild_note.park_id),
        newest_version_seen=pick("version", 3, wild_note.newest_version_seen),
        earlier_passages=pick("earlier", 0, wild_note.earlier_passages),
        note_type=pick("type", 1, wild_note.note_type),
        direction=pick("note_direction", "E", wild_note.direction),
        plate=pick("plate_note", PLATE, wild_note.plate),
        ic_card=pick("card_note", CARD, wild_note.ic_card),
        goods_gross_kg=pick("weights", Decimal("8000"), wild_note.goods_gross_kg),
        container_no=pick("container_note", BOX, wild_note.container_no),
        seal_required=pick("seal_required", True, wild_note.seal_required),
        inventories=pick("inventories", INVTS, wild_note.inventories),
    )
    cache = gate_cache(
        candidates=pick("candidates", (n,), (n, *wild_cache.candidates)),
        inventories=pick("invt_facts", gate_cache().inventories, wild_cache.inventories),
        last_sync_age_s=pick("age", 30.0, wild_cache.last_sync_age_s),
    )
    p = passage(
        gate=pick("gate", "single", wild_p.gate),
        direction=pick("direction", "E", wild_p.direction),
        plate=pick("plate", "沪a12345", wild_p.plate),
        plate_confidence=pick("confidence", 0.97, wild_p.plate_confidence),
        card=pick("card", CARD, wild_p.card),
        card_reader_configured=pick("reader", True, wild_p.card_reader_configured),
        gross_kg=pick("gross", GROSS + edge, wild_p.gross_kg),
        containers=pick("containers", (BOX,), wild_p.containers),
        seals=pick("seals", ("SL1",), wild_p.seals),
        device_faults=pick("faults", (), wild_p.device_faults),
        tailgating=pick("tailgating", False, wild_p.tailgating),
    )
    return p, cache, tol


# --- spoiling a passing vehicle, fault by fault ---------------------------------------------------


@dataclass
class Case:
    """A passing vehicle (``base``) with faults applied to it one by one."""

    base: Passage
    note: dict[str, Any] = field(default_factory=dict)
    passage: dict[str, Any] = field(default_factory=dict)
    invts: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    extra_notes: tuple[NoteFacts, ...] = ()
    no_note: bool = False
    tol: GateTolerance = TOL

    def faults(self, *names: str) -> tuple[str, ...]:
        return (*self.passage.get("device_faults", ()), *names)

    def inputs(self) -> tuple[Passage, GateCache, GateTolerance]:
        facts = [invt(i, **o) for i in INVTS if (o := self.invts.get(i, {})) is not None]
        candidates = () if self.no_note else (note(**self.note), *self.extra_notes)
        cache = gate_cache(candidates=candidates, inventories=tuple(facts), **self.cache)
        return self.base.model_copy(update=self.passage), cache, self.tol


# each alone stops a passing vehicle
FAULTS: dict[str, Any] = {
    "no note": lambda c: setattr(c, "no_note", True),
    "second open note": lambda c: setattr(c, "extra_notes", (note(note_no="HF9"),)),
    "signature": lambda c: c.note.update(signature_valid=False),
    "park": lambda c: c.note.update(park_id="P9"),
    "rolled back": lambda c: c.note.update(newest_version_seen=9),
    "applied": lambda c: c.note.update(status="0"),
    "deleted": lambda c: c.note.update(status="5"),
    "passed": lambda c: c.note.update(status="2"),
    "used": lambda c: c.note.update(earlier_passages=1),
    "second gate": lambda c: c.passage.update(gate="second"),
    "direction": lambda c: c.passage.update(direction="I"),
    "plate": lambda c: c.passage.update(plate=OTHER_PLATE),
    "unsure plate": lambda c: c.passage.update(plate_confidence=0.3),
    "card": lambda c: c.passage.update(card=OTHER_CARD),
    "no card": lambda c: c.passage.update(card=None),
    "no weight": lambda c: c.passage.update(gross_kg=None),
    "NaN weight": lambda c: c.passage.update(gross_kg=Decimal("NaN")),
    "heavy": lambda c: c.passage.update(gross_kg=GROSS + ALLOWED + 1),
    "light": lambda c: c.passage.update(gross_kg=GROSS - ALLOWED - 1),
    "far out": lambda c: c.passage.update(gross_kg=GROSS + 700),
    "slightly heavy": lambda c: c.passage.update(gross_kg=GROSS + 300),
    "slightly light": lambda c: c.passage.update(gross_kg=GROSS - 604),
    "other container": lambda c: c.passage.update(containers=(OTHER_BOX,)),
    "bad container": lambda c: c.passage.update(containers=(BAD_BOX,)),
    "no container read": lambda c: c.passage.update(containers=()),
    "no seal": lambda c: c.passage.update(seals=()),
    "not cleared": lambda c: c.invts.update(INV0001={"status": "399"}),
    "unknown inventory": lambda c: c.invts.update(INV0002=None),
    "cancelled": lambda c: c.invts.update(INV0001={"cancelled": True}),
    "not by line": lambda c: c.invts.update(INV0002={"released_by_line": False}),
    "out": lambda c: c.invts.update(INV0002={"passed_gate": True}),
    "tailgating": lambda c: c.passage.update(tailgating=True),
    "stale": lambda c: c.cache.update(last_sync_age_s=9999.0),
    "barrier down": lambda c: c.passage.update(device_faults=c.faults("barrier")),
    "container camera down": lambda c: c.passage.update(device_faults=c.faults("container_camera")),
    "plate camera down": lambda c: c.passage.update(device_faults=c.faults("plate_camera"), plate=None),
    "card reader down": lambda c: c.passage.update(device_faults=c.faults("card_reader"), card=None),
    "card reader down, card read": lambda c: c.passage.update(device_faults=c.faults("card_reader")),
    "weighbridge down": lambda c: c.passage.update(device_faults=c.faults("weighbridge"), gross_kg=None),
    "weighbridge down, weight read": lambda c: c.passage.update(device_faults=c.faults("weighbridge")),
    "seal reader down": lambda c: c.passage.update(device_faults=c.faults("seal_reader"), seals=()),
}
# each alone leaves a passing vehicle passing, but changes what the faults above mean
VARIANTS: dict[str, Any] = {
    "no seal required": lambda c: c.note.update(seal_required=False),
    "no container": lambda c: (
        c.note.update(container_no=None, container_kg=0, frame_kg=7200)  # same expected gross
        or c.passage.update(containers=())
    ),
    "empty vehicle": lambda c: c.note.update(EMPTY) or c.passage.update(gross_kg=Decimal("22200")),
    "no card reader": lambda c: c.passage.update(card_reader_configured=False),
    "note without card": lambda c: c.note.update(ic_card=None),
    "no override limit": lambda c: setattr(
        c, "tol", GateTolerance(absolute_kg=Decimal(50), percent=Decimal("0.5"))
    ),
    "dual gate, first": lambda c: c.passage.update(gate="first"),
}
# what is no fault once a variant applies: nothing to read, or nothing carried
NOT_A_FAULT_WITH = {
    "no seal required": {"no seal"},
    "no container": {"no container read"},
    "empty vehicle": {"not cleared", "unknown inventory", "cancelled", "not by line", "out"},
    "no card reader": {"card", "no card"},
    "note without card": {"card", "no card"},
}
passing_passages = st.builds(
    passage,
    plate=st.sampled_from(["沪A12345", "沪a 12345", "沪A-12345", PLATE]),
    gross_kg=st.decimals(min_value=GROSS - ALLOWED, max_value=GROSS + ALLOWED, places=2),
    containers=st.sampled_from([(BOX,), (BOX, BOX), ("CSQU 305438 3",)]),
)


@st.composite
def spoilt(draw: st.DrawFn) -> tuple[Case, list[str]]:
    """A passing vehicle (with some variants) and the faults, in order, that will be applied to it."""
    case = Case(base=draw(passing_passages))
    variants = draw(st.lists(st.sampled_from(sorted(VARIANTS)), max_size=2, unique=True))
    for name in variants:
        VARIANTS[name](case)
    faults = sorted(set(FAULTS).difference(*(NOT_A_FAULT_WITH.get(v, ()) for v in variants)))
    return case, draw(st.lists(st.sampled_from(faults), min_size=1, max_size=4, unique=True))


OPERATIONAL_FAULTS = sorted(
    name for name in FAULTS if "down" in name or "weight" in name or "slightly" in name
)


@st.composite
def spoilt_inputs(draw: st.DrawFn) -> tuple[Passage, GateCache, GateTolerance]:
    """A passing vehicle with some of its faults applied, mostly those a supervisor may override."""
    case, faults = draw(spoilt())
    faults = (
        draw(st.lists(st.sampled_from(OPERATIONAL_FAULTS), min_size=1, max_size=3))
        + faults[: draw(st.integers(0, 1))]
    )
    for name in faults:
        FAULTS[name](case)
    return case.inputs()


# --- the override oracle: when a supervisor may release, read from the raw inputs -----------------


def oracle_overridable(p: Passage, cache: GateCache, tol: GateTolerance) -> bool:
    """Everything a customs stop guards holds (a missing read excused only by its device being down),
    and every operational stop is within its condition."""
    if oracle_pass(p, cache, tol) or not note_and_inventories_ok(p, cache):
        return False
    n = the_note(cache)
    assert n is not None
    down = {d.strip() for d in p.device_faults}
    age = cache.last_sync_age_s
    if n.direction != p.direction or p.tailgating:
        return False
    if age is None or not math.isfinite(age) or not 0 <= age < cache.staleness_limit_s:
        return False
    conf = p.plate_confidence
    plate_counted = (
        conf is not None and 0 <= conf <= 1 and conf >= tol.plate_min_confidence and squash(p.plate)
    )
    plate_ok = bool(plate_counted) and squash(p.plate) == squash(n.plate)
    if not plate_ok and (plate_counted or "plate_camera" not in down):
        return False
    card_checked = p.card_reader_configured and bool(squash(n.ic_card))
    card_ok = card_checked and "card_reader" not in down and squash(p.card) == squash(n.ic_card)
    if card_checked and squash(p.card) != squash(n.ic_card) and (squash(p.card) or "card_reader" not in down):
        return False
    box = containers.normalise(n.container_no or "")
    reads = [r for r in (containers.normalise(c) for c in p.containers) if r]
    if box and (not containers.is_valid(box) or any(r != box for r in reads)):
        return False
    if (box and not reads and "container_camera" not in down) or (not box and reads):
        return False
    seals = [s for s in p.seals if s.strip()]
    if n.seal_required and not seals and "seal_reader" not in down:
        return False
    g = p.gross_kg
    if g is None or not g.is_finite() or g <= 0:
        return False  # no weight is never overridden: it is the only measured evidence of the load
    elif not weight_ok(p, n, tol):
        with localcontext(_WIDE):
            expected = (
                n.vehicle_tare_kg
                + n.frame_kg
                + n.container_kg
                + (0 if n.note_type == 6 else n.goods_gross_kg)
            )
            if n.note_type == 6 and g > expected:
                return False
            o = tol.override_limit
            if o is None or abs(g - expected) > max(o.absolute_kg, expected * o.percent / 100):
                return False
    for device in down:
        if device == "card_reader" and not plate_ok:
            return False
        if device == "plate_camera" and not card_ok:
            return False
        if device == "weighbridge":
            return False
        if device == "seal_reader" and (n.seal_required or n.seal_ids):
            return False
        if device not in ("card_reader", "plate_camera", "weighbridge", "seal_reader"):
            return False
    return True


# --- properties -----------------------------------------------------------------------------------


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.one_of(scenarios(), near_clean(), spoilt_inputs(), spoilt_inputs()))  # twice: half are spoilt
@example((passage(), gate_cache(), TOL))
def test_pass_and_override_only_when_the_oracles_say_so(
    scenario: tuple[Passage, GateCache, GateTolerance],
) -> None:
    """(1) PASS ⇔ every precondition; (3) overridable ⇔ the override oracle, so never with a customs
    code and never for a bad note or inventory; (4) decide never raises and is well formed."""
    p, cache, tol = scenario
    decision = decide(p, cache, tol)

    assert (decision.verdict is Verdict.PASS) == oracle_pass(p, cache, tol)
    assert overridable(decision) == oracle_overridable(p, cache, tol), override_refusal(decision)
    if any(c.stop_class is StopClass.CUSTOMS for c in decision.codes):
        assert not overridable(decision)
    if overridable(decision):
        assert decision.verdict is Verdict.STOP
        assert note_and_inventories_ok(p, cache)
    assert (decision.verdict is Verdict.PASS) == (not decision.findings)
    assert decision.codes == tuple(dict.fromkeys(f.code for f in decision.findings))
    assert all(f.override_refused for f in decision.findings if f.code.stop_class is StopClass.CUSTOMS)
    assert decision.reason
    json.dumps(decision.checked, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(st.one_of(scenarios(), near_clean()))
def test_codes_come_in_rule_order(scenario: tuple[Passage, GateCache, GateTolerance]) -> None:
    decision = decide(*scenario)
    rank: dict[Code, int] = {}
    for position, rule in enumerate(RULES):
        for finding in rule(*scenario):
            rank.setdefault(finding.code, position)
    assert [rank[c] for c in decision.codes] == sorted(rank[c] for c in decision.codes)


@settings(max_examples=200, deadline=None)
@given(spoilt())
def test_a_fault_added_never_lets_a_vehicle_through(spoiling: tuple[Case, list[str]]) -> None:
    """(2) Monotonicity: the vehicle passes; with any one fault it stops, and every further fault keeps
    it stopped."""
    case, faults = spoiling
    assert decide(*case.inputs()).verdict is Verdict.PASS
    for name in faults:
        FAULTS[name](case)
        assert decide(*case.inputs()).verdict is Verdict.STOP, name


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(weights, weights, weights, weights),
    st.integers(1, 6),
    st.decimals(min_value=0, max_value=500, places=3),
    st.decimals(min_value=0, max_value=5, places=3),
    st.decimals(min_value=0, max_value=2000, places=3),
)
def test_weight_rule_symmetric_and_inclusive(
    kgs: tuple[Decimal, Decimal, Decimal, Decimal],
    note_type: int,
    absolute: Decimal,
    percent: Decimal,
    d: Decimal,
) -> None:
    """(5) Heavier or lighter by the same amount: both pass or both stop; exactly at the allowed
    difference passes, a gram beyond stops."""
    tare, frame, box, goods = kgs
    tare += 1  # a vehicle weighs something
    tol = GateTolerance(absolute_kg=absolute, percent=percent)
    invts = () if note_type == 6 else INVTS
    n = note(
        vehicle_tare_kg=tare,
        frame_kg=frame,
        container_kg=box,
        goods_gross_kg=goods,
        note_type=note_type,
        inventories=invts,
    )
    expected = tare + frame + box + (0 if note_type == 6 else goods)
    allowed = max(absolute, expected * percent / 100)
    cache = gate_cache(candidates=(n,))

    def stops(gross: Decimal) -> bool:
        codes = set(decide(passage(gross_kg=gross), cache, tol).codes)
        return bool(codes & {C.WEIGHT_OUT_OF_TOLERANCE, C.EMPTY_VEHICLE_NOT_EMPTY, C.NO_WEIGHT})

    if expected - d > 0:
        assert stops(expected + d) == stops(expected - d)
        assert stops(expected + d) == (d > allowed)
    if expected - allowed > 0:
        assert not stops(expected + allowed)
        assert not stops(expected - allowed)
        assert stops(expected + allowed + Decimal("0.001"))
        assert stops(expected - allowed - Decimal("0.001"))
