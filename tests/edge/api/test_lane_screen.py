"""The lane screen a driver reads from the cab: the verdict word, the plate, the weighbridge against
the note, the note and the reason — a vehicle's words, not a parcel's."""

from __future__ import annotations

from decimal import Decimal

from edge import vehicle_rules as vr
from edge.api.screen import Snapshot, render_screen
from edge.checker import DecisionRecord
from edge.stations.base import StationState


def _record(verdict: vr.Verdict, reason: str) -> DecisionRecord:
    return DecisionRecord(
        id=1,
        decision_id="d-1",
        station="lane-1",
        code="琼A12345",
        verdict=verdict,
        codes=() if verdict is vr.Verdict.PASS else ("WEIGHT_OUT_OF_TOLERANCE",),
        reason=reason,
        weight_kg=Decimal("17300"),
        declared_kg=Decimal("17201.6"),
        evidence=None,
        goods="note N-1: 2 parcels",
        created_at="2026-12-06T10:00:00.000000Z",
    )


def test_a_stop_shows_the_reason_the_plate_and_the_weights_in_a_vehicles_words() -> None:
    html = render_screen(
        Snapshot(
            "lane-1",
            "vehicle_gate",
            StationState.STOP,
            (),
            _record(vr.Verdict.STOP, "Weight wrong: 98 kg over"),
        )
    )
    assert "STOP" in html and "Weight wrong: 98 kg over" in html and "琼A12345" in html
    assert "Vehicle" in html and "Weighbridge" in html and "note total" in html and "note N-1" in html
    assert "Parcel" not in html


def test_a_pass_tells_the_driver_to_drive_on() -> None:
    html = render_screen(
        Snapshot(
            "lane-1", "vehicle_gate", StationState.PASS, (), _record(vr.Verdict.PASS, "Release note checked")
        )
    )
    assert "PASS" in html and "Drive on" in html
