"""Vehicle gate lane: decision time and the whole lane cycle, against the lane's simulators.

    .venv/bin/python bench/vehicle_lane.py                  # 3 runs: 30 fast trucks + 3 paced trucks each
    .venv/bin/python bench/vehicle_lane.py --runs 5 --trucks 50

The edge agent runs in this process with one `vehicle_gate` lane on the simulators of
firmware_sim/truck.py (weighbridge streaming Toledo continuous frames on a pty, the lane's I/O module
on Modbus TCP, the electronic-plate reader on a pty, plate/container/seal recognition over a real
Mosquitto); central is a real uvicorn holding each truck's approved release note, its parcels
released by the park's line. Three figures per run:

- `decision`: from the stable whole-vehicle weighbridge reading (the driver's `WeightReading.at`),
  with plate, card, container and seals already read, to the barrier's open switch confirmed (the
  lane's own clock, `VehicleGate.cycles`). It includes the decision's durable transaction (notes and
  inventories read, the rules, the decision, passage and event written, fsync), the barrier command
  written and read back, the barrier's travel (the simulator's `travel_s`, 0.05 s here) and the
  lane I/O module's polling (100 Hz) that sees the open switch.
- `floor`: the same I/O with nothing decided: a bare Modbus client writes the barrier coil, reads it
  back and polls the open switch at 100 Hz until it shows open (same simulator, same travel).
- `cycle`: a compliant truck at a realistic pace (`Pace()` defaults: 0.5 s between steps, axles
  rolling on at 0.6 s each, the weight swinging 0.8 s and settling 1.0 s, barrier travel 1.0 s):
  from the entry loop occupied to the barrier confirmed open.
Reported: p50 / p99 per run and the median of the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pymodbus.client import AsyncModbusTcpClient  # noqa: E402

from bench.machine import machine  # noqa: E402
from firmware_sim.truck import Faults, Pace, Truck, VehicleLane, drive  # noqa: E402
from testkit.central_server import run_central  # noqa: E402
from testkit.mosquitto import running_broker  # noqa: E402
from testkit.park import wait_until  # noqa: E402
from testkit.vehicle_lane import declare_note, release_on_line, running_lane, truck_for  # noqa: E402

FAST_TRAVEL_S = 0.05


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def present_then_weigh(lane: VehicleLane, truck: Truck) -> None:
    """A truck whose readers have spoken before its weight settles (what `decision` measures from)."""
    io, bridge, sensors = lane.io, lane.bridge, lane.sensors
    await io.set_input("entry_loop", True)
    await io.set_input("platform_back", True)
    await asyncio.sleep(0.05)
    await sensors.plate(truck.plate, lane=lane.name, confidence=0.97)
    if lane.e_plate is not None and truck.e_plate:
        lane.e_plate.present(truck.e_plate, times=1)
    await sensors.container(truck.containers, lane=lane.name)
    await sensors.seal(truck.seals, lane=lane.name)
    await asyncio.sleep(0.1)
    bridge.drive_on(truck.gross_kg, axles=2)
    await io.set_input("entry_loop", False)
    await io.set_input("platform_back", False)
    await io.wait_barrier("open", 20)
    for point, value in (("platform_front", True), ("safety_loop", True), ("platform_front", False)):
        await io.set_input(point, value)
        await asyncio.sleep(0.05)  # longer than the lane's poll period: each change is seen
    bridge.drive_off(axles=2)
    for point, value in (("exit_loop", True), ("safety_loop", False), ("exit_loop", False)):
        await io.set_input(point, value)
        await asyncio.sleep(0.05)
    await io.wait_barrier("closed", 20)


async def floor(lane: VehicleLane, n: int) -> list[float]:
    """Barrier coil written and read back, the open switch polled at 100 Hz until open; then closed."""
    out = []
    client = AsyncModbusTcpClient(lane.io.host, port=lane.io.port)
    await client.connect()
    barrier = lane.io.io.outputs["barrier"].channel + lane.io.profile.do_address
    switch = lane.io.io.inputs["barrier_open"].channel + lane.io.profile.di_address
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            await client.write_coil(barrier, True, device_id=1)
            await client.read_coils(barrier, count=1, device_id=1)
            while not (await client.read_discrete_inputs(switch, count=1, device_id=1)).bits[0]:
                await asyncio.sleep(0.01)
            out.append(time.perf_counter() - t0)
            await client.write_coil(barrier, False, device_id=1)
            await lane.io.wait_barrier("closed", 10)
    finally:
        client.close()
    return out


def one_run(tmp: Path, trucks: int, paced: int) -> dict[str, list[float]]:
    (tmp / "mq").mkdir()
    with running_broker(tmp / "mq") as broker, run_central(tmp / "c") as central:

        async def run() -> dict[str, list[float]]:
            results: dict[str, list[float]] = {"decision": [], "floor": [], "cycle": []}
            loads = []
            for i in range(trucks + paced):
                truck = truck_for(Decimal("1.6"), plate=f"琼A{20000 + i}", e_plate=f"E280116060000204{i:08X}")
                loads.append((truck, declare_note(central, f"B-{i}", 1000 + 2 * i, 2, truck)[0]))
            async with running_lane(tmp / "fast", central, broker.port) as lane:
                await wait_until(lambda: lane.agent.store.count_notes() == len(loads), 60, "notes synced")
                for _, details in loads:
                    await release_on_line(lane.agent, details)
                lane.sims.io.travel_s = lane.sims.io.barrier_delay_s = FAST_TRAVEL_S
                station = lane.station
                for truck, _ in loads[:trucks]:
                    try:
                        await present_then_weigh(lane.sims, truck)
                    except TimeoutError:
                        rows = (
                            lane.agent.store.reader()
                            .execute(
                                "SELECT verdict, reason, actuation, actuation_detail FROM decisions"
                                " WHERE station = 'lane-1'"
                            )
                            .fetchall()
                        )
                        states = lane.sims.io.states
                        raise SystemExit(
                            f"the lane did not pass {truck.plate}: {[tuple(r) for r in rows]} {states}"
                        ) from None
                    await wait_until(lambda: len(station.cycles) > 0, 10, "the cycle")
                    c = station.cycles.pop()
                    results["decision"].append(c["opened"] - c["weighed"])
                await asyncio.sleep(0.5)
                # the same lane at a realistic pace
                lane.sims.io.travel_s = lane.sims.io.barrier_delay_s = 1.0
                bridge = lane.sims.bridge
                bridge.axle_s, bridge.oscillation_s, bridge.settle_s = 0.6, 0.8, 1.0
                for truck, _ in loads[trucks:]:
                    await drive(lane.sims, truck, Faults(), pace=Pace())
                    await wait_until(lambda: len(station.cycles) > 0, 10, "the cycle")
                    c = station.cycles.pop()
                    results["cycle"].append(c["opened"] - c["arrived"])
            async with VehicleLane.running(
                tmp / "floor", broker_port=broker.port, travel_s=FAST_TRAVEL_S
            ) as sims:
                results["floor"] = await floor(sims, trucks)
            return results

        return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trucks", type=int, default=30)
    parser.add_argument("--paced", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    summary: dict[str, list[tuple[float, float]]] = {"decision": [], "floor": [], "cycle": []}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-lane-") as tmp:
            results = one_run(Path(tmp), args.trucks, args.paced)
        for name, values in results.items():
            p50, p99 = pct(values, 0.5), pct(values, 0.99)
            summary[name].append((p50, p99))
            print(
                f"run {run + 1} {name:8s} n={len(values):3d}"
                f" p50 {p50 * 1000:8.1f} ms  p99 {p99 * 1000:8.1f} ms"
            )
    for name, rows in summary.items():
        p50 = statistics.median(r[0] for r in rows)
        p99 = statistics.median(r[1] for r in rows)
        print(f"median of runs {name:8s} p50 {p50 * 1000:8.1f} ms  p99 {p99 * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
