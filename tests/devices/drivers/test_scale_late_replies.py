"""MT-SICS: a reply that arrives after its timeout never answers a later command. Against a balance
written from the MT-SICS reference manual (testkit/vendor_scales.py), not firmware_sim: it
answers in the order it was asked, and holds chosen replies back until a time, the driver's next
command, or a manual release — so the late lines come in every pattern without depending on timing.
Every wait is bounded by BOUND; nothing asserts a duration."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from devices.drivers.scale import ScaleCommandError
from devices.health import State
from testkit.vendor_scales import BOUND, TIMEOUT, MtSicsBalance, aio, driving, stable_since

LATE = {
    "just after its timeout": {"count": 1, "release": 1.5 * TIMEOUT},
    "after the next request": {"count": 1, "release": "next"},
    "two late lines queued": {"count": 2, "release": "next"},
}


@pytest.mark.parametrize("command", ["SI", "S"])
@pytest.mark.parametrize("pattern", list(LATE))
@aio
async def test_a_late_weight_never_answers_a_later_request(pattern: str, command: str) -> None:
    """The balance weighs parcel A (5.000 kg) and answers after the driver gave up; parcel B (9.000 kg)
    is on it by the next request. No reading measured after the swap may say 5.000."""
    balance = MtSicsBalance()
    balance.put("5.000")
    async with driving(balance, "mt-sics", mt_sics_command=command) as driver:
        assert (await stable_since(driver, time.monotonic())).kg == Decimal("5.000")
        late = LATE[pattern]
        balance.hold(late["count"], release=late["release"])  # type: ignore[arg-type]
        await balance.wait_held(late["count"])
        balance.put("9.000")
        swapped = time.monotonic()
        readings = [await stable_since(driver, swapped) for _ in range(3)]
        assert [r.kg for r in readings] == [Decimal("9.000")] * 3
        assert driver.counters["late_reply"] >= 1
        await driver.supervisor.wait_for(State.UP, BOUND)


@aio
async def test_a_late_line_from_the_session_before_never_answers_the_next_session() -> None:
    """The balance stops answering (its replies held), the session ends DOWN as silent and a new one
    starts; then the old replies arrive. The new session's first weight must be the load now."""
    balance = MtSicsBalance()
    balance.put("5.000")
    async with driving(balance, "mt-sics", silent_after=2) as driver:
        assert (await stable_since(driver, time.monotonic())).kg == Decimal("5.000")
        balance.hold(1, only={"SI"}, release="manual")
        await balance.wait_held(1)
        balance.put("9.000")
        swapped = time.monotonic()
        await driver.supervisor.wait_for(State.DOWN, BOUND)
        asked = len(balance.received_lines)
        async with asyncio.timeout(BOUND):  # the new session's first command has arrived
            while len(balance.received_lines) <= asked:
                await asyncio.sleep(0.005)
        balance.release()
        assert (await stable_since(driver, swapped)).kg == Decimal("9.000")


@aio
async def test_a_late_tare_reply_never_answers_the_next_tare() -> None:
    balance = MtSicsBalance()
    balance.put("2.000")
    async with driving(balance, "mt-sics", poll_interval_s=30) as driver:  # no poll between the tares
        await stable_since(driver, time.monotonic())
        balance.hold(1, only={"T"}, release="next")
        with pytest.raises(ScaleCommandError, match="no reply"):
            await driver.tare()  # the balance tared 2.000; its "T S 2.000 kg" is held
        balance.put("3.000")
        assert await driver.tare() == Decimal("3.000")


@aio
async def test_a_late_zero_reply_never_confirms_the_next_zero() -> None:
    balance = MtSicsBalance()
    balance.put("0.010")
    async with driving(balance, "mt-sics", poll_interval_s=30) as driver:
        await stable_since(driver, time.monotonic())
        balance.hold(1, only={"Z"}, release="next")
        with pytest.raises(ScaleCommandError, match="no reply"):
            await driver.zero()  # done ("Z A"), but the answer is held
        balance.put("4.000", stable=False)
        with pytest.raises(ScaleCommandError, match="busy or not stable"):
            await driver.zero()  # this one is refused ("Z I"): the late "Z A" must not confirm it


@aio
async def test_a_late_identification_reply_is_not_noise() -> None:
    """The driver asks I4 to find its place after a timeout (and at the start of a session): a late
    answer to it is expected, dropped quietly, and never taken for anything else."""
    balance = MtSicsBalance()
    balance.put("1.250")
    balance.hold(1, only={"I4"}, release="next")
    async with driving(balance, "mt-sics") as driver:
        assert (await stable_since(driver, time.monotonic())).kg == Decimal("1.250")
        await driver.supervisor.wait_for(State.UP, BOUND)
        assert balance.held == 1
        assert driver.counters["noise"] == 0


@aio
async def test_a_reply_to_a_cancelled_command_never_answers_the_next_one() -> None:
    """The caller of tare() gives up (its own deadline) while the balance is still answering: that
    answer, when it comes, must not be taken for the next tare's."""
    balance = MtSicsBalance()
    balance.put("2.000")
    async with driving(balance, "mt-sics", poll_interval_s=30, reply_timeout_s=BOUND) as driver:
        await stable_since(driver, time.monotonic())
        balance.hold(1, only={"T"}, release="next")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(TIMEOUT):
                await driver.tare()  # cancelled mid-command; the balance tared 2.000
        balance.put("3.000")
        assert await driver.tare() == Decimal("3.000")
