"""Say what is wrong: an MT-SICS balance set to a unit the driver cannot convert is named as such
(never "silent", never a weight in the wrong unit), and a port that is not a serial port is named.
The balance is written from the MT-SICS reference manual (testkit/vendor_scales.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from decimal import Decimal
from pathlib import Path

import pytest

from devices.drivers.scale import ScaleCommandError, ScaleConfig, ScaleDriver
from devices.health import State
from testkit.vendor_scales import BOUND, TIMEOUT, MtSicsBalance, aio, driving, stable_since


@pytest.mark.parametrize("unit", ["ct", "PCS", "N", "ozt"])
@aio
async def test_a_unit_that_cannot_be_converted_is_named(unit: str) -> None:
    balance = MtSicsBalance(unit=unit)
    balance.put("11.023")
    async with driving(balance, "mt-sics") as driver:
        health = await driver.supervisor.wait_for(State.DOWN, BOUND)
        assert health.reason.endswith(f"unit {unit} not supported; set the balance to kg")
        assert await driver.wait_stable(3 * TIMEOUT) is None  # never a weight in a wrong unit
        assert driver.latest is None or driver.latest.kg is None
        with pytest.raises(ScaleCommandError, match=f"unit {unit} not supported"):
            await driver.tare()  # the balance tared, and said so in its unit
        await driver.clear_tare()  # "TAC A" carries no unit
        balance.unit = "kg"
        assert (await stable_since(driver, time.monotonic())).kg == Decimal("11.023")
        await driver.supervisor.wait_for(State.UP, BOUND)


@pytest.mark.parametrize(("unit", "shown", "kg"), [("g", "1500.0", "1.5"), ("lb", "11.023", "4.99995")])
@aio
async def test_units_defined_in_kg_are_converted_exactly(unit: str, shown: str, kg: str) -> None:
    balance = MtSicsBalance(unit=unit, decimals=1 if unit == "g" else 3)
    balance.put(shown)
    async with driving(balance, "mt-sics") as driver:
        reading = await stable_since(driver, time.monotonic())
        exact = Decimal(shown) * (Decimal("0.001") if unit == "g" else Decimal("0.45359237"))
        assert reading.kg == exact and round(exact, 5) == Decimal(kg)
        await driver.supervisor.wait_for(State.UP, BOUND)


@pytest.mark.parametrize("kind", ["regular file", "fifo"])
@aio
async def test_a_path_that_is_not_a_serial_port_is_named(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "scale0"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(b"")
    driver = ScaleDriver("file", ScaleConfig(protocol="mt-sics", url=str(path), backoff_max_s=0.2))
    task = asyncio.create_task(driver.run())
    try:
        health = await driver.supervisor.wait_for(State.DOWN, BOUND)
        assert f"cannot configure {path}: not a serial port" in health.reason
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
