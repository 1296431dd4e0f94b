"""The vehicle gate lane against its simulators over real transports — the weighbridge streaming
Toledo continuous frames on a pty, the lane's loops, beams and barrier on Modbus TCP, the electronic
plate reader on a pty, plate, container and seal recognition over a real Mosquitto — with a real
central holding the truck's release note. Nothing here asserts a duration."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from edge import vehicle_rules as vr
from firmware_sim.truck import Faults, Pace, drive
from testkit.central_server import run_central
from testkit.mosquitto import Broker
from testkit.park import wait_until
from testkit.vehicle_lane import declare_note, release_on_line, running_lane, truck_for

PACE = Pace(step_s=0.05, settle_timeout_s=10, barrier_timeout_s=8)


def _decisions(lane: Any) -> list[Any]:
    return [r for r in lane.agent.recent if r.station == "lane-1"]


def test_a_compliant_truck_passes_and_central_marks_its_note_passed(
    tmp_path: Path, mosquitto: Broker
) -> None:
    with run_central(tmp_path / "c") as central:
        truck = truck_for(Decimal("1.6"))

        async def scenario() -> tuple[Any, list[Any]]:
            async with running_lane(tmp_path, central, mosquitto.port) as lane:
                details, _ = declare_note(central, "L-1", 81, 2, truck)
                await wait_until(lambda: lane.agent.store.count_notes() == 1, what="the note synced")
                await release_on_line(lane.agent, details)
                passage = await drive(lane.sims, truck, pace=PACE)
                await wait_until(lambda: lane.sims.io.barrier == "closed", what="the barrier closed")
                await wait_until(lambda: lane.agent.store.backlog()["size"] == 0, what="events delivered")
                return passage, _decisions(lane)

        passage, decisions = asyncio.run(scenario())
        assert passage.barrier_opened and passage.left
        assert passage.refused_closes == 0  # the lane never commanded the arm down onto the truck
        [record] = decisions
        assert record.verdict == vr.Verdict.PASS, record.reason
        note = central.client("officer").get("/api/v1/release-notes/L-1").json()
        assert note["status"] == "2"
        [receipt] = [r for r in note["receipts"] if r["message_type"] == "SAS223"]
        shown = (truck.gross_kg / 20).quantize(Decimal(1)) * 20  # the bridge's 20 kg division
        assert receipt["body"]["SasPassportBsc"]["passCollectWt"] == str(shown)


@pytest.mark.parametrize(
    ("faults", "code"),
    [
        (Faults(overweight_kg=Decimal(900)), "WEIGHT_OUT_OF_TOLERANCE"),
        (Faults(swapped_plate="琼B99999"), "PLATE_MISMATCH"),
        (Faults(missing_seal=True), "SEAL_MISSING"),
        (Faults(unplugged_reader="e_plate"), "DEVICE_FAULT"),
    ],
    ids=["overweight", "swapped-plate", "missing-seal", "reader-unplugged"],
)
def test_a_faulty_truck_is_stopped_with_the_reason_and_the_barrier_stays_closed(
    tmp_path: Path, mosquitto: Broker, faults: Faults, code: str
) -> None:
    with run_central(tmp_path / "c") as central:

        async def scenario() -> tuple[Any, list[Any]]:
            async with running_lane(tmp_path, central, mosquitto.port) as lane:
                truck = truck_for(Decimal("1.6"))
                details, _ = declare_note(central, "L-2", 91, 2, truck)
                await wait_until(lambda: lane.agent.store.count_notes() == 1, what="the note synced")
                await release_on_line(lane.agent, details)
                passage = await drive(
                    lane.sims, truck, faults, pace=Pace(step_s=0.05, settle_timeout_s=10, barrier_timeout_s=3)
                )
                return passage, _decisions(lane)

        passage, decisions = asyncio.run(scenario())
        assert not passage.barrier_opened and not passage.left
        [record] = decisions
        assert record.verdict == vr.Verdict.STOP and code in record.codes, record.reason
        assert central.client("officer").get("/api/v1/release-notes/L-2").json()["status"] == "1"


def test_a_tailgater_is_its_own_stopped_passage_and_the_barrier_closes_behind_it(
    tmp_path: Path, mosquitto: Broker
) -> None:
    with run_central(tmp_path / "c") as central:

        async def scenario() -> tuple[Any, list[Any]]:
            async with running_lane(tmp_path, central, mosquitto.port) as lane:
                truck = truck_for(Decimal("1.6"))
                details, _ = declare_note(central, "L-3", 101, 2, truck)
                await wait_until(lambda: lane.agent.store.count_notes() == 1, what="the note synced")
                await release_on_line(lane.agent, details)
                passage = await drive(lane.sims, truck, Faults(tailgating=True), pace=PACE)
                await wait_until(lambda: lane.sims.io.barrier == "closed", what="the barrier closed")
                await wait_until(lambda: len(_decisions(lane)) == 2, what="the tailgater recorded")
                return passage, _decisions(lane)

        passage, decisions = asyncio.run(scenario())
        assert passage.left and "tailgater_left" in passage.steps
        first, second = decisions
        assert first.verdict == vr.Verdict.PASS
        assert second.verdict == vr.Verdict.STOP and "TAILGATING" in second.codes
        assert passage.refused_closes == 0  # the lane never commanded the arm down onto either vehicle


def test_a_supervisor_releases_a_truck_whose_reader_is_down_but_not_one_with_a_wrong_plate(
    tmp_path: Path, mosquitto: Broker
) -> None:
    with run_central(tmp_path / "c") as central:

        async def scenario() -> tuple[Any, Any, list[Any]]:
            async with running_lane(tmp_path, central, mosquitto.port) as lane:
                truck = truck_for(Decimal("1.6"))
                details, _ = declare_note(central, "L-4", 111, 2, truck)
                await wait_until(lambda: lane.agent.store.count_notes() == 1, what="the note synced")
                await release_on_line(lane.agent, details)
                refusals: list[str] = []

                async def supervisor(step: str) -> None:
                    if step != "presented":
                        return
                    stopped = await wait_until(lambda: _decisions(lane), what="the lane's decision")
                    try:
                        await lane.station.override(
                            stopped[-1], operator="sam", reason="plate matched; reader cable out"
                        )
                    except Exception as exc:
                        refusals.append(str(exc))

                released = await drive(
                    lane.sims, truck, Faults(unplugged_reader="e_plate"), pace=PACE, on_step=supervisor
                )
                await wait_until(lambda: lane.sims.io.barrier == "closed", what="the barrier closed")
                # the next truck shows another plate: a customs stop, never released by hand
                other = truck_for(Decimal("1.6"), plate="琼B77777", e_plate="E2801160600002046F3B2F42")
                stopped = await drive(
                    lane.sims,
                    other,
                    pace=Pace(step_s=0.05, settle_timeout_s=10, barrier_timeout_s=3),
                    on_step=supervisor,
                )
                assert refusals == [] or released.barrier_opened
                return released, stopped, refusals

        released, stopped, refusals = asyncio.run(scenario())
        assert released.barrier_opened and released.left
        assert not stopped.barrier_opened and len(refusals) == 1
        note = central.client("officer").get("/api/v1/release-notes/L-4").json()
        assert note["status"] == "2" and "released by sam" in note["history"][-1]["info"]
