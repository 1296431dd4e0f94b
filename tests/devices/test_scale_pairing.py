"""A reply is the answer to the request it is paired with, or no reading at all: lines and frames
nobody asked for (a print key, a scale set to send on its own) and replies much later than their
timeout, against scales written from the vendors' documents (tests/support/vendor_scales.py). Each
case is an outside finding. Every wait is bounded by BOUND; nothing asserts a duration."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Literal

import pytest

from devices.health import State
from tests.support.vendor_scales import BOUND, MtSicsBalance, aio, driving, stable_since

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
        balance.print_key(when=when)
        for load in ("9.000", "11.000", "13.000"):
            balance.put(load)
            swapped = time.monotonic()
            readings = [await stable_since(driver, swapped) for _ in range(2)]
            assert [r.kg for r in readings] == [Decimal(load)] * 2
        assert driver.counters["unsolicited"] >= 1
        assert driver.counters["late_reply"] == 0
        degraded = driver.health
        assert degraded.state == State.DEGRADED and "nobody asked for" in degraded.reason
        assert "print" in degraded.reason
        await driver.supervisor.wait_for(State.UP, BOUND)  # once the key is left alone
