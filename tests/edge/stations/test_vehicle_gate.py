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
from testkit.vehicle_lane import declare_note, note_ready, release_on_line, running_lane, truck_for

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
                await note_ready(lane, central, "L-1", 81, truck)
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
                truck = await note_ready(lane, central, "L-2", 91)
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
                truck = await note_ready(lane, central, "L-3", 101)
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
                truck = await note_ready(lane, central, "L-4", 111)
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


async def _onto_the_bridge(
    sims: Any,
    truck: Any,
    *,
    extra_plates: tuple[tuple[str, float, str], ...] = (),
    boxes_first: tuple[str, ...] = (),
    serial_seals: tuple[str, ...] = (),
) -> None:
    """A truck on the entry loop and the weighbridge, its readers heard (plus `extra_plates`: plate,
    confidence, the lane the payload names — all published on this lane's topic)."""
    from devices.protocols.sensor_payloads import PlateResult, encode
    from kernel.timefmt import utc_now

    io, bridge, sensors = sims.io, sims.bridge, sims.sensors
    await io.set_input("entry_loop", True)
    await io.set_input("platform_back", True)
    await asyncio.sleep(0.1)
    await sensors.plate(truck.plate, lane=sims.name, confidence=0.97)
    for plate, confidence, lane in extra_plates:
        message = PlateResult(plate=plate, confidence=confidence, lane=lane, ts=utc_now())
        await sensors.publish_raw(sensors.plate_topic(sims.name), encode(message))
    sims.e_plate.present(truck.e_plate, times=1)
    for seal in serial_seals:  # a serial seal reader (the lane's second id reader)
        sims.ic_card.present(seal, times=1)
    if boxes_first:  # another box recognised first, then the note's
        await sensors.container(boxes_first, lane=sims.name)
    await sensors.container(truck.containers, lane=sims.name)
    await sensors.seal(truck.seals, lane=sims.name)
    await asyncio.sleep(0.2)
    bridge.drive_on(truck.gross_kg, axles=2)
    await io.set_input("entry_loop", False)
    await asyncio.sleep(0.1)
    await io.set_input("platform_back", False)


def test_a_truck_that_backs_out_after_its_pass_closes_the_barrier_and_its_parcels_stay_listed(
    tmp_path: Path, mosquitto: Broker
) -> None:
    """The outside attack: truck A passes, backs off the bridge, and a vehicle with no note drives
    out under the still-open barrier. Now the barrier closes as soon as anything comes back on the
    lane, the pass is reported not carried out, and central keeps A's parcels as not out."""
    with run_central(tmp_path / "c") as central:

        async def scenario() -> list[Any]:
            async with running_lane(tmp_path, central, mosquitto.port) as lane:
                truck = await note_ready(lane, central, "L-5", 171)
                sims = lane.sims
                await _onto_the_bridge(sims, truck)
                await sims.io.wait_barrier("open", 15)
                # A reverses: off the bridge and back over the entry loop
                await sims.io.set_input("platform_back", True)
                sims.bridge.drive_off(axles=2)
                await asyncio.sleep(0.1)
                await sims.io.set_input("entry_loop", True)
                await sims.io.wait_barrier("closed", 10)  # closed with nothing under it
                await sims.io.set_input("platform_back", False)
                await sims.io.set_input("entry_loop", False)
                await wait_until(lambda: lane.agent.store.backlog()["size"] == 0, 20, what="events delivered")
                return _decisions(lane)

        decisions = asyncio.run(scenario())
        assert [d.verdict for d in decisions] == [vr.Verdict.PASS, vr.Verdict.STOP]
        assert "TAILGATING" in decisions[1].codes
        report = central.client("officer").get("/api/v1/parks/P1/gate-report").json()
        [not_carried] = report["passes_not_carried_out"]["items"]
        assert not_carried["note"] == "L-5" and not_carried["actuation"] == "withheld"
        assert report["released_not_through_gate"]["total"] == 2  # the parcels never left


def test_conflicting_plates_stop_the_truck_and_another_lanes_read_is_ignored(
    tmp_path: Path, mosquitto: Broker
) -> None:
    with run_central(tmp_path / "c") as central:

        async def scenario() -> tuple[list[Any], int]:
            async with running_lane(tmp_path, central, mosquitto.port) as lane:
                truck = await note_ready(lane, central, "L-6", 181)
                extra = (("粤Z00001", 0.99, "in-2"), ("粤Z99999", 0.95, lane.sims.name))
                await _onto_the_bridge(lane.sims, truck, extra_plates=extra)
                await wait_until(lambda: _decisions(lane), 15, what="the decision")
                return _decisions(lane), lane.station.foreign_reads

        decisions, foreign = asyncio.run(scenario())
        [record] = decisions
        assert record.verdict == vr.Verdict.STOP and "PLATE_MISMATCH" in record.codes, record.reason
        assert foreign == 1  # the read naming lane in-2 was not taken


def test_a_box_that_is_not_the_notes_read_before_the_right_one_still_stops_the_truck(
    tmp_path: Path, mosquitto: Broker
) -> None:
    with run_central(tmp_path / "c") as central:

        async def scenario() -> list[Any]:
            async with running_lane(tmp_path, central, mosquitto.port) as lane:
                truck = await note_ready(lane, central, "L-7", 191)
                await _onto_the_bridge(lane.sims, truck, boxes_first=("MSKU1234565",))
                await wait_until(lambda: _decisions(lane), 15, what="the decision")
                return _decisions(lane)

        [record] = asyncio.run(scenario())
        assert record.verdict == vr.Verdict.STOP and "CONTAINER_MISMATCH" in record.codes, record.reason


@pytest.mark.parametrize("read", [("ES001", "ES002"), ("ES001",)], ids=["both-seals", "one-seal-missing"])
def test_electronic_seals_read_by_a_serial_reader(
    tmp_path: Path, mosquitto: Broker, read: tuple[str, ...]
) -> None:
    with run_central(tmp_path / "c") as central:

        async def scenario() -> list[Any]:
            async with running_lane(
                tmp_path, central, mosquitto.port, seal=None, seal_reader="seal_serial"
            ) as lane:
                truck = await note_ready(lane, central, "L-8", 201)
                await _onto_the_bridge(lane.sims, truck, serial_seals=read)
                await wait_until(lambda: _decisions(lane), 15, what="the decision")
                return _decisions(lane)

        [record] = asyncio.run(scenario())
        if len(read) == 2:
            assert record.verdict == vr.Verdict.PASS, record.reason
        else:
            assert record.verdict == vr.Verdict.STOP and "SEAL_MISSING" in record.codes


def test_the_entry_loop_as_an_mqtt_loop_detector(tmp_path: Path, mosquitto: Broker) -> None:
    """The lane's entry loop reported by an MQTT loop detector instead of an I/O point."""
    with run_central(tmp_path / "c") as central:

        async def scenario() -> list[Any]:
            async with running_lane(
                tmp_path,
                central,
                mosquitto.port,
                loops={"entry_loop": {"device": "lane_mqtt", "sensor": "entry"}},
                extra_sensors=[{"name": "entry", "type": "loop", "topic": "bondgate/sim/loop/entry-1"}],
            ) as lane:
                truck = await note_ready(lane, central, "L-9", 211)
                sims = lane.sims
                await sims.sensors.loop(True, name="entry-1")  # the truck on the loop, over MQTT
                await wait_until(lambda: lane.station.vehicle is not None, 10, what="the arrival")
                await sims.io.set_input("platform_back", True)
                await asyncio.sleep(0.1)
                await sims.sensors.plate(truck.plate, lane=sims.name, confidence=0.97)
                sims.e_plate.present(truck.e_plate, times=1)
                await sims.sensors.container(truck.containers, lane=sims.name)
                await sims.sensors.seal(truck.seals, lane=sims.name)
                sims.bridge.drive_on(truck.gross_kg, axles=2)
                await sims.sensors.loop(False, name="entry-1")
                await asyncio.sleep(0.1)
                await sims.io.set_input("platform_back", False)
                await wait_until(lambda: _decisions(lane), 15, what="the decision")
                return _decisions(lane)

        [record] = asyncio.run(scenario())
        assert record.verdict == vr.Verdict.PASS, record.reason


def test_a_vehicle_rolling_on_behind_while_the_arm_rises_is_a_tailgater(
    tmp_path: Path, mosquitto: Broker
) -> None:
    """Round two of the outside attack: B waited on the entry loop behind A and rolled over the back
    beam while A's barrier was still rising. It is a tailgater from the open command on."""
    with run_central(tmp_path / "c") as central:

        async def scenario() -> list[Any]:
            async with running_lane(tmp_path, central, mosquitto.port) as lane:
                truck = await note_ready(lane, central, "L-10", 221)
                sims = lane.sims
                sims.io.travel_s = sims.io.barrier_delay_s = 1.0  # a slow arm
                await _onto_the_bridge(sims, truck)
                await sims.io.set_input("entry_loop", True)  # B waits behind A
                await wait_until(lambda: sims.io.barrier == "opening", 15, what="the arm rising")
                await sims.io.set_input("platform_back", True)  # B rolls on while it rises
                await wait_until(lambda: len(_decisions(lane)) == 2, 10, what="the tailgater recorded")
                return _decisions(lane)

        first, second = asyncio.run(scenario())
        assert first.verdict == vr.Verdict.PASS
        assert second.verdict == vr.Verdict.STOP and "TAILGATING" in second.codes


def test_a_truck_that_noses_under_the_arm_and_backs_out_has_not_left(
    tmp_path: Path, mosquitto: Broker
) -> None:
    with run_central(tmp_path / "c") as central:

        async def scenario() -> None:
            async with running_lane(tmp_path, central, mosquitto.port) as lane:
                truck = await note_ready(lane, central, "L-11", 231)
                sims = lane.sims
                await _onto_the_bridge(sims, truck)
                await sims.io.wait_barrier("open", 15)
                for point, value in (("platform_front", True), ("safety_loop", True)):  # the cab under it
                    await sims.io.set_input(point, value)
                    await asyncio.sleep(0.1)
                for point, value in (
                    ("safety_loop", False),
                    ("platform_front", False),
                    ("platform_back", True),
                ):
                    await sims.io.set_input(point, value)  # and back, over the bridge
                    await asyncio.sleep(0.1)
                sims.bridge.drive_off(axles=2)
                await sims.io.set_input("entry_loop", True)
                await sims.io.wait_barrier("closed", 10)
                for point in ("platform_back", "entry_loop"):
                    await sims.io.set_input(point, False)
                await wait_until(lambda: lane.agent.store.backlog()["size"] == 0, 20, what="events delivered")

        asyncio.run(scenario())
        report = central.client("officer").get("/api/v1/parks/P1/gate-report").json()
        assert [r["note"] for r in report["passes_not_carried_out"]["items"]] == ["L-11"]
        assert report["released_not_through_gate"]["total"] == 2


def test_after_a_restart_the_pass_is_not_taken_up_for_another_truck_of_the_same_weight(
    tmp_path: Path, mosquitto: Broker
) -> None:
    """Round two: A's pass was decided, the agent stopped, A left and B (no note, same gross) drove on.
    The restarted lane reads B's plate, which is not A's: the barrier stays closed."""
    from edge.agent import Agent
    from firmware_sim.truck import VehicleLane
    from testkit.vehicle_lane import FAST_BRIDGE, lane_settings

    with run_central(tmp_path / "c") as central:

        async def scenario() -> tuple[str, list[str]]:  # the barrier, its states after the restart
            async with VehicleLane.running(
                tmp_path / "lane",
                broker_port=mosquitto.port,
                travel_s=0.05,
                bridge=FAST_BRIDGE,
                watchdog_s=1.0,
            ) as sims:
                settings = lane_settings(tmp_path, central, sims, mosquitto.port, resume_read_s=2.0)
                truck = truck_for(Decimal("1.6"))
                details, _ = declare_note(central, "L-12", 241, 2, truck)
                agent = Agent(settings)
                await agent.start()
                await wait_until(lambda: agent.store.count_notes() == 1, what="the note synced")
                await release_on_line(agent, details)
                await wait_until(lambda: all(h.state.value == "UP" for h in agent.hub.all_health().values()))
                await _onto_the_bridge(sims, truck)
                await wait_until(
                    lambda: [r for r in agent.recent if r.station == "lane-1"], 15, what="A's pass"
                )
                await agent.stop()  # before A has left
                await sims.io.wait_barrier("closed", 10)  # the module's watchdog dropped the command
                sims.bridge.drive_off(axles=2)  # A gone (backwards: the barrier is closed)
                await asyncio.sleep(0.3)
                other = truck_for(Decimal("1.6"), plate="琼B88888", e_plate="E28011606000020400000099")
                sims.bridge.drive_on(other.gross_kg, axles=2)  # B, as heavy, on the bridge
                moved = len(sims.io.states)
                again = Agent(settings)
                await again.start()
                try:
                    for _ in range(8):  # the camera reads B while it stands there
                        await sims.sensors.plate(other.plate, lane=sims.name, confidence=0.98)
                        await asyncio.sleep(0.5)
                    await asyncio.sleep(1.0)
                    return sims.io.barrier, sims.io.states[moved:]
                finally:
                    await again.stop()

        barrier, since_restart = asyncio.run(scenario())
        assert barrier == "closed" and "opening" not in since_restart  # never opened for B
