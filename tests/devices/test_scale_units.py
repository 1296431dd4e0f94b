"""A scale set to a unit the edge does not weigh in, or in a state where its number is not a weight:
against scales written from the vendors' documents (tests/support/vendor_scales.py). Each case is an
outside finding: the scale must say why it cannot weigh, and give no weight. Every wait is bounded
by BOUND; nothing asserts a duration."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from devices.events import WeightReading
from devices.health import State
from tests.support.vendor_scales import BOUND, MtSicsBalance, aio, driving, stable_since


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
        seen = _readings(driver)
        balance.unit = unit
        health = await driver.supervisor.wait_for(State.DOWN, BOUND)
        assert "not supported" in health.reason and "set the balance to kg" in health.reason
        assert f"unit {unit[:9]}" in health.reason and len(health.reason) < 60
        assert driver.counters["unit"] >= 1
        assert all(r.kg is None and not r.stable for r in seen)
        balance.unit = "kg"
        await driver.supervisor.wait_for(State.UP, BOUND)
