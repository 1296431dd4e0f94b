"""A reply is the answer to the request it is paired with, or no reading at all: lines and frames
nobody asked for (a print key, a scale set to send on its own) and replies much later than their
timeout, against scales written from the vendors' documents (testkit/vendor_scales.py). Each
case is an outside finding. Every wait is bounded by BOUND; nothing asserts a duration."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Literal

import pytest

from devices.drivers.scale import ScaleDriver
from devices.health import State
from testkit.vendor_scales import BOUND, MtSicsBalance, Toledo8217, aio, driving, stable_since


def _health_reasons(driver: ScaleDriver) -> list[str]:
    """The reason of every fault the driver reports from now on (the health itself may be UP again
    by the time a test looks: DEGRADED recovers by itself)."""
    reasons: list[str] = []
    fault = driver.supervisor.fault

    def record(reason: str) -> None:
        reasons.append(reason)
        fault(reason)

    driver.supervisor.fault = record  # type: ignore[method-assign]
    return reasons


# --- MT-SICS: the print/transfer key --------------------------------------------------------------


@pytest.mark.parametrize("when", ["now", "before-next-reply"])
@aio
async def test_mt_sics_a_print_key_line_never_answers_a_request(
    when: Literal["now", "before-next-reply"],
) -> None:
    """The balance shows 5.000 kg and someone presses its transfer key: `S S 5.000 kg` goes out
    unasked — between two polls, or while the next request is on its way. Parcel B (9.000 kg) is
    then put on. Every reading measured after that is B's, for every load change after it too (the
    replies never fall one request behind); the line is counted and the health says why."""
    balance = MtSicsBalance()
    balance.put("5.000")
    async with driving(balance, "mt-sics", poll_interval_s=0.3) as driver:
        await stable_since(driver, time.monotonic())  # the driver is between polls now
        reasons = _health_reasons(driver)
        balance.print_key(when=when)
        for load in ("9.000", "11.000", "13.000"):
            balance.put(load)
            swapped = time.monotonic()
            readings = [await stable_since(driver, swapped) for _ in range(2)]
            assert [r.kg for r in readings] == [Decimal(load)] * 2
        assert driver.counters["unsolicited"] >= 1
        assert any("nobody asked for" in r and "print" in r for r in reasons)
        await driver.supervisor.wait_for(State.UP, BOUND)  # once the key is left alone


# --- Toledo 8217: the PRINT key, and replies later than any timeout -------------------------------


async def _replies(scale: Toledo8217, count: int) -> None:
    """Until the scale has put `count` replies on the wire (bounded)."""
    async with asyncio.timeout(BOUND):
        while scale.replies < count:
            await asyncio.sleep(0.005)


@pytest.mark.parametrize("with_next_reply", [True, False])
@aio
async def test_8217_a_print_frame_never_answers_a_w(with_next_reply: bool) -> None:
    """PRINT sends the weigh data record unasked: right behind a W reply, in the same read, or on
    its own between two W's. Parcel B (9.00) then replaces A (5.00): every reading measured after
    the swap is B's (the PRINT record once stayed in the parser and answered the next W with A's
    weight), and the frame is counted."""
    scale = Toledo8217()
    scale.weight = Decimal("5.00")
    async with driving(scale, "toledo-8217", poll_interval_s=0.3) as driver:
        await stable_since(driver, time.monotonic())
        reasons = _health_reasons(driver)
        sent = scale.replies
        scale.print_key(with_next_reply=with_next_reply)
        await _replies(scale, sent + 1)
        scale.weight = Decimal("9.00")
        swapped = time.monotonic()
        readings = [await stable_since(driver, swapped) for _ in range(3)]
        assert [r.kg for r in readings] == [Decimal("9.00")] * 3
        assert driver.counters["unsolicited"] >= 1
        assert any("nobody asked for" in r and "PRINT" in r for r in reasons)


@aio
async def test_8217_a_reply_later_than_timeout_quiet_and_poll_never_answers_a_w() -> None:
    """The reply to a W comes 2 × reply_timeout_s + poll_interval_s + 0.1 s after it (the replies
    behind it wait, in order): once the driver only waited for the line to go quiet for one timeout,
    so that reply (A's 5.00) answered the next W, after B (9.00) was put on. Now the line must stay
    quiet for resync_quiet_s (3 × reply_timeout_s) first."""
    scale = Toledo8217()
    scale.weight = Decimal("5.00")
    async with driving(scale, "toledo-8217") as driver:
        await stable_since(driver, time.monotonic())
        config = driver.config
        scale.hold(1, release=2 * config.reply_timeout_s + config.poll_interval_s + 0.1)
        async with asyncio.timeout(BOUND):
            while not scale.held:
                await asyncio.sleep(0.005)
        scale.weight = Decimal("9.00")
        swapped = time.monotonic()
        readings = [await stable_since(driver, swapped) for _ in range(3)]
        assert [r.kg for r in readings] == [Decimal("9.00")] * 3
        assert driver.counters["late_reply"] >= 1


@aio
async def test_8217_a_reply_later_than_the_quiet_period_cannot_pass_as_the_answer() -> None:
    """Later than any quiet period: the reply to a W (A's 5.00) is held until the next W arrives,
    and that W is lost on the line, so the late line is the only frame that comes for it — nothing
    extra to give it away. One line cannot repeat itself: after a missed reply a weight counts only
    when the next answer repeats it, so no reading measured after the swap says 5.00."""
    scale = Toledo8217()
    scale.weight = Decimal("5.00")
    async with driving(scale, "toledo-8217") as driver:
        await stable_since(driver, time.monotonic())
        scale.hold(1, release="next", lose_next=True)
        async with asyncio.timeout(BOUND):
            while not scale.held:
                await asyncio.sleep(0.005)
        scale.weight = Decimal("9.00")
        swapped = time.monotonic()
        readings = [await stable_since(driver, swapped) for _ in range(3)]
        assert [r.kg for r in readings] == [Decimal("9.00")] * 3
        assert scale.ignored == 1  # the lost W: the late line was all that came for it
        await driver.supervisor.wait_for(State.UP, BOUND)
