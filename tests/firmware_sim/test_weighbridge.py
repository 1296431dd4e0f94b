"""The weighbridge simulator: every frame it sends decodes to the weight it meant, in whole
divisions, with the increment the format can say; and the scale driver, in Toledo continuous mode
over a real pty, sees a truck drive on in motion and then exactly its gross, stable, for as long as
it stands. The plan advances per frame sent, so nothing here depends on the machine's speed."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.drivers.scale import ScaleConfig, ScaleDriver
from devices.events import WeightReading
from devices.health import State
from devices.protocols import toledo
from firmware_sim.weighbridge import DIVISIONS, WeighbridgeSim

BOUND = 5.0  # an upper bound for anything to happen; never a measured duration
GROSS = Decimal(49020)


def aio(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))

    return run


def quick(**kw: Any) -> WeighbridgeSim:
    """A bridge whose truck takes a few dozen frames to drive on and settle."""
    return WeighbridgeSim(**({"rate_hz": 50.0, "axle_s": 0.1, "oscillation_s": 0.2, "settle_s": 0.2} | kw))


def frames_of(bridge: WeighbridgeSim, n: int) -> list[toledo.ContinuousFrame]:
    decoded = [toledo.decode_continuous(bridge.continuous_frame()) for _ in range(n)]
    assert all(f is not None for f in decoded)
    return [f for f in decoded if f is not None]


# --- sans-I/O: what the frames say ----------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(sorted(DIVISIONS)),
    st.integers(1, 55_000),
    st.integers(1, 8),
    st.floats(0.0, 0.3),
)
def test_a_truck_drives_on_in_motion_then_stands_at_its_gross_in_whole_divisions(
    division: int, gross: int, axles: int, settle_s: float
) -> None:
    bridge = quick(division_kg=division)
    planned = bridge.drive_on(gross, axles=axles, settle_s=settle_s)
    frames = frames_of(bridge, planned + 5)
    shown = bridge.shown(Decimal(gross))
    assert all(f.motion for f in frames[:planned])  # never a stable weight on the way
    assert [(f.weight, f.motion) for f in frames[planned:]] == [(shown, False)] * 5
    expected_increment = DIVISIONS[division][1]
    for f in frames:
        assert f.unit == "kg" and f.increment == expected_increment and not f.out_of_range
        assert f.weight % division == 0 and f.weight.as_tuple().exponent == 0  # 49020, never 4.902E+4
    assert bridge.settled and bridge.load_kg == gross

    off = bridge.drive_off(axles=axles)
    frames = frames_of(bridge, off + 2)
    assert all(f.motion for f in frames[:off]) and [f.weight for f in frames[off:]] == [0, 0]
    assert all(not f.motion for f in frames[off:])
    weights = [f.weight for f in frames[:off]]
    assert weights == sorted(weights, reverse=True)  # driving off, axle by axle, only ever less


def test_the_weight_rises_in_steps_and_swings_about_the_gross_before_it_settles() -> None:
    bridge = quick(division_kg=20, oscillation_kg=300)
    planned = bridge.drive_on(GROSS, axles=5)
    weights = [f.weight for f in frames_of(bridge, planned)]
    rising = weights[: weights.index(GROSS)]
    assert rising == sorted(rising) and rising[0] > 0 and len(set(rising)) >= 5  # axle by axle
    assert max(weights) > GROSS > min(weights[len(rising) :])  # braking: over and under the gross
    assert weights[-10:] == [GROSS] * 10  # the settle time: the weight still, the motion bit still on


@pytest.mark.parametrize(
    ("division", "frame"), [(20, b"\x0210 004902000000\r"), (1, b"\x02*0 049020000000\r")]
)
def test_the_frame_bytes_say_the_division(division: int, frame: bytes) -> None:
    bridge = quick(division_kg=division)
    bridge.set_load(GROSS, settle_after=0)
    assert bridge.continuous_frame() == frame  # SWA: XX0 ×2 for 20 kg; XXX ×1 for 1 kg


def test_an_overweight_truck_reads_over_range() -> None:
    bridge = quick(capacity_kg=40_000)
    planned = bridge.drive_on(Decimal(40_180))  # capacity + 9 divisions: still in range
    assert not frames_of(bridge, planned + 1)[-1].out_of_range
    bridge.drive_off()
    bridge.drive_on(Decimal(40_200))
    frames = frames_of(bridge, 200)
    assert frames[-1].out_of_range and not frames[-1].stable


def test_unknown_division_is_refused() -> None:
    with pytest.raises(ValueError, match="division_kg must be one of"):
        WeighbridgeSim(division_kg=25)


# --- the scale driver over a pty ------------------------------------------------------------------


@contextlib.asynccontextmanager
async def weighing(tmp_path: Path, **sim: Any) -> AsyncIterator[tuple[WeighbridgeSim, ScaleDriver]]:
    async with quick(
        link=tmp_path / "bridge0",
        **({"rate_hz": 100.0, "axle_s": 0.03, "oscillation_s": 0.1, "settle_s": 0.1} | sim),
    ) as bridge:
        config = ScaleConfig(protocol="toledo-continuous", url=bridge.path, reply_timeout_s=0.5)
        async with ScaleDriver("bridge0", config) as driver:
            await driver.supervisor.wait_for(State.UP, BOUND)
            yield bridge, driver


async def next_reading(driver: ScaleDriver) -> WeightReading:
    async with asyncio.timeout(BOUND):
        while not isinstance(event := await driver.events.get(), WeightReading):
            pass
    return event


async def readings_until(driver: ScaleDriver, done: Callable[[WeightReading], bool]) -> list[WeightReading]:
    seen: list[WeightReading] = []
    async with asyncio.timeout(BOUND):
        while not seen or not done(seen[-1]):
            event = await driver.events.get()
            if isinstance(event, WeightReading):
                seen.append(event)
    return seen


@aio
async def test_the_scale_driver_sees_motion_first_then_exactly_the_stable_gross(tmp_path: Path) -> None:
    async with weighing(tmp_path) as (bridge, driver):
        empty = await driver.wait_stable(BOUND)
        assert empty is not None and empty.kg == 0
        bridge.drive_on(GROSS)
        seen = await readings_until(driver, lambda r: r.stable and r.kg != 0)
        while seen[0].stable and seen[0].kg == 0:  # frames of the empty platform already on their way
            seen.pop(0)
        *moving, first = seen
        assert moving and all(not r.stable for r in moving)  # motion frames first, every one
        assert any(r.kg is not None and 0 < r.kg < GROSS for r in moving)  # the weight rising
        assert first.kg == GROSS and not first.overload and not first.net
        parked = [await next_reading(driver) for _ in range(10)]
        assert all(r.stable and r.kg == GROSS for r in parked)  # and stays, while the truck stands

        bridge.drive_off()
        seen = await readings_until(driver, lambda r: r.stable and r.kg == 0)
        while seen[0].stable and seen[0].kg == GROSS:
            seen.pop(0)
        assert all(not r.stable for r in seen[:-1]) and seen[-1].kg == 0
        assert driver.health.state == State.UP


@aio
async def test_an_overweight_truck_is_never_a_stable_weight(tmp_path: Path) -> None:
    async with weighing(tmp_path, capacity_kg=40_000) as (bridge, driver):
        await driver.wait_stable(BOUND)
        bridge.drive_on(GROSS)
        await bridge.wait_settled(BOUND)
        over = await readings_until(driver, lambda r: r.overload)
        assert over[-1].kg is None and not over[-1].stable
        assert await driver.wait_stable(0.3) is None
