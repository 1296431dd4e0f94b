"""A scale set to a unit the edge does not weigh in, or in a state where its number is not a weight:
against scales written from the vendors' documents (testkit/vendor_scales.py). Each case is an
outside finding: the scale must say why it cannot weigh, and give no weight. Every wait is bounded
by BOUND; nothing asserts a duration."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from devices.events import WeightReading
from devices.health import State
from testkit.vendor_scales import BOUND, MtSicsBalance, ToledoContinuous, aio, driving, stable_since


def _readings(driver: object) -> list[WeightReading]:
    """Every reading the driver emits from now on."""
    seen: list[WeightReading] = []
    events = driver.events  # type: ignore[attr-defined]
    put = events.put

    def record(event: WeightReading) -> None:
        seen.append(event)
        put(event)

    events.put = record
    return seen


async def _next(seen: list[WeightReading], count: int) -> list[WeightReading]:
    """`seen` once it holds `count` readings (bounded)."""
    async with asyncio.timeout(BOUND):
        while len(seen) < count:
            await asyncio.sleep(0.01)
    return seen


# --- MT-SICS: a unit token the parser does not know ---------------------------------------------


@pytest.mark.parametrize("unit", ["t", "lbs", "Kg", "kg,", "custom-unit-xyz"])
@aio
async def test_mt_sics_unknown_unit_is_down_with_the_unit_not_silence(unit: str) -> None:
    """`S S 5.000 t`: the balance answered, in a unit with no kg here. DOWN saying which unit (the
    token clipped), no weight — not "silent", which sends someone to check the cable."""
    balance = MtSicsBalance()
    balance.put("5.000")
    async with driving(balance, "mt-sics") as driver:
        assert (await stable_since(driver, time.monotonic())).kg == Decimal("5.000")
        balance.unit = unit
        health = await driver.supervisor.wait_for(State.DOWN, BOUND)
        assert "not supported" in health.reason and "set the balance to kg" in health.reason
        assert f"unit {unit[:9]}" in health.reason and len(health.reason) < 60
        assert driver.counters["unit"] >= 1
        seen = await _next(_readings(driver), 3)
        assert all(r.kg is None and not r.stable for r in seen)
        balance.unit = "kg"
        await driver.supervisor.wait_for(State.UP, BOUND)


# --- Toledo continuous output: the unit in status word C, and frames that are no weighing ---------


@pytest.mark.parametrize(
    ("weight", "decimals", "kg", "unit", "expected"),
    [
        ("5000", 0, False, "g", "5"),  # 001 grams; SWB bit 4 (lb) does not say the unit here
        ("5000", 0, True, "g", "5"),  # grams with SWB's kg bit set (some terminals keep it)
        ("0.500", 3, True, "t", "500"),  # 010 metric tons
        ("16.00", 2, False, "oz", "0.45359237"),  # 011 ounces, exactly a pound
        ("12.34", 2, True, None, "12.34"),  # 000 and SWB kg
        ("1.00", 2, False, None, "0.45359237"),  # 000 and SWB lb
    ],
)
@aio
async def test_continuous_unit_comes_from_status_word_c(
    weight: str, decimals: int, kg: bool, unit: str | None, expected: str
) -> None:
    """5000 g was reported as 2267.96 kg (taken for lb) or 5000 kg, 0.500 t as 0.500 kg."""
    indicator = ToledoContinuous()
    indicator.weight, indicator.decimals, indicator.kg, indicator.unit = Decimal(weight), decimals, kg, unit
    async with driving(indicator, "toledo-continuous") as driver:
        reading = await stable_since(driver, time.monotonic())
        assert reading.kg == Decimal(expected)
        assert driver.health.state != State.DOWN


@pytest.mark.parametrize("unit", ["ozt", "dwt", "long ton", "custom"])
@aio
async def test_continuous_unit_without_a_kg_value_is_down_with_the_unit(unit: str) -> None:
    indicator = ToledoContinuous()
    indicator.weight = Decimal("5.00")
    async with driving(indicator, "toledo-continuous") as driver:
        await stable_since(driver, time.monotonic())
        indicator.unit = unit
        health = await driver.supervisor.wait_for(State.DOWN, BOUND)
        assert health.reason == f"unit {unit} not supported; set the indicator to kg"
        seen = await _next(_readings(driver), 3)
        assert all(r.kg is None and not r.stable for r in seen)
        assert driver.counters["unit"] >= 1
        indicator.unit = None
        assert (await stable_since(driver, time.monotonic())).kg == Decimal("5.00")
        assert driver.health.state != State.DOWN


@pytest.mark.parametrize(
    ("flag", "counter", "words"),
    [("not_zeroed", "not_zeroed", "zero the scale"), ("expanded", "expanded", "expanded")],
)
@aio
async def test_continuous_not_zeroed_or_expanded_display_is_no_weight(
    flag: str, counter: str, words: str
) -> None:
    """SWB bit 6 (powered up, not zeroed since) and SWC bit 4 (display expanded ×10): the number is
    no weighing. Both were reported as stable weights. No weight, DOWN saying what to do."""
    indicator = ToledoContinuous()
    indicator.weight = Decimal("12.34")
    async with driving(indicator, "toledo-continuous") as driver:
        await stable_since(driver, time.monotonic())
        setattr(indicator, flag, True)
        health = await driver.supervisor.wait_for(State.DOWN, BOUND)
        assert words in health.reason
        assert driver.counters[counter] >= 1
        seen = await _next(_readings(driver), 3)
        assert all(r.kg is None and not r.stable for r in seen)
        setattr(indicator, flag, False)
        assert (await stable_since(driver, time.monotonic())).kg == Decimal("12.34")


# --- Toledo continuous output: noise on a checksummed stream -------------------------------------


@pytest.mark.parametrize("every", [2, 3, 10])
@aio
async def test_continuous_a_frame_with_a_bad_checksum_is_never_a_weight(every: int) -> None:
    """The indicator sends checksums; the line flips a bit of a weight digit in one frame in `every`
    (50.00 becomes 50.20, the checksum as sent). With detection on (the default), every stable
    reading is 50.00 and the bad frames are counted. Detection once reset at every bad frame,
    never settled, and took every frame unverified: 13 wrong stable readings in 2 s."""
    indicator = ToledoContinuous(checksum=True)
    indicator.weight = Decimal("50.00")
    indicator.corrupt_every = every
    async with driving(indicator, "toledo-continuous") as driver:
        seen = _readings(driver)
        await stable_since(driver, time.monotonic())
        sent = indicator.frames_sent
        async with asyncio.timeout(BOUND):
            while indicator.frames_sent < sent + 6 * every or driver.counters["checksum"] < 2:
                await asyncio.sleep(0.02)
        assert {r.kg for r in seen if r.stable} == {Decimal("50.00")}
        assert all(r.kg == Decimal("50.00") for r in seen)
