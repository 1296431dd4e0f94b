"""7-bit devices (7E1) read by 8-bit ports (8N1): the parity bit arrives as bit 7 of every byte. The
scales here are written from the vendors' formats (testkit/vendor_scales.py) behind a model of
the line that computes each character's parity, not from firmware_sim. A misconfigured port must
still weigh right, and the health reason must say what to set."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from devices.health import State
from devices.protocols import parity
from testkit.vendor_scales import (
    BOUND,
    Line,
    MtSicsBalance,
    PtyDevice,
    Toledo8217,
    ToledoContinuous,
    aio,
    continuous_frame,
    driving,
    stable_since,
)


def test_the_emulated_7e1_line_puts_even_parity_in_bit_7() -> None:
    frame = continuous_frame(Decimal("12.34"))
    assert frame == b"\x02,0 001234000000\r"  # PROTOCOLS.md's example, from the format itself
    on_8n1 = Line("7E1", "8N1").to_host(frame)
    assert on_8n1[0] == 0x82 and on_8n1[-1] == 0x8D and on_8n1[5] == 0x30 and on_8n1[6] == 0xB1
    assert all(bin(b).count("1") % 2 == 0 for b in on_8n1)
    assert Line("7E1", "7E1").to_host(frame) == frame
    assert Line("7E1", "8N1").to_device(b"SI\r\n") == [
        (0x53, True),
        (0x49, False),
        (0x0D, False),
        (0x0A, True),
    ]


@pytest.mark.parametrize("checksum", [False, True])
@aio
async def test_toledo_continuous_at_7e1_on_an_8n1_port_decodes_and_says_so(checksum: bool) -> None:
    indicator = ToledoContinuous(line=Line("7E1", "8N1"), checksum=checksum)
    indicator.weight = Decimal("12.34")
    async with driving(indicator, "toledo-continuous", bytesize=8, parity="N") as driver:
        reading = await stable_since(driver, time.monotonic())
        assert reading.kg == Decimal("12.34")
        health = await driver.supervisor.wait_for(State.DEGRADED, BOUND)
        assert "bit 7" in health.reason and "8N1" in health.reason and "7E1" in health.reason
        indicator.weight = Decimal("-3.50")
        assert (await stable_since(driver, time.monotonic())).kg == Decimal("-3.50")


@aio
async def test_toledo_continuous_at_7e1_on_a_7e1_port_is_up() -> None:
    indicator = ToledoContinuous(line=Line("7E1", "7E1"))
    indicator.weight = Decimal("7.25")
    async with driving(indicator, "toledo-continuous", bytesize=7, parity="E") as driver:
        assert (await stable_since(driver, time.monotonic())).kg == Decimal("7.25")
        await driver.supervisor.wait_for(State.UP, BOUND)


@aio
async def test_mt_sics_balance_at_7e1_on_an_8n1_port_works_and_says_so() -> None:
    """The first command reaches the balance with parity errors (it answers ET, with its parity bits);
    from then on the driver sends with the balance's parity, and reports the mismatch."""
    balance = MtSicsBalance(line=Line("7E1", "8N1"))
    balance.put("5.000")
    async with driving(balance, "mt-sics") as driver:
        assert (await stable_since(driver, time.monotonic())).kg == Decimal("5.000")
        health = await driver.supervisor.wait_for(State.DEGRADED, BOUND)
        assert "bit 7" in health.reason and "7E1" in health.reason
        assert any(line.startswith("<parity error>") for line in balance.received_lines)
        assert await driver.tare() == Decimal("5.000")
        assert driver.health.state == State.DEGRADED  # stays told, no flapping


@aio
async def test_mt_sics_balance_at_7e1_on_a_7e1_port_is_up() -> None:
    balance = MtSicsBalance(line=Line("7E1", "7E1"))
    balance.put("0.500")
    async with driving(balance, "mt-sics", bytesize=7, parity="E") as driver:
        assert (await stable_since(driver, time.monotonic())).kg == Decimal("0.500")
        await driver.supervisor.wait_for(State.UP, BOUND)
        assert not any(line.startswith("<parity error>") for line in balance.received_lines)


@aio
async def test_toledo_8217_lenient_at_7e1_on_an_8n1_port_decodes_and_says_so() -> None:
    scale = Toledo8217(line=Line("7E1", "8N1"), answer_bad_parity=True)
    scale.weight = Decimal("1.234")
    async with driving(scale, "toledo-8217", bytesize=8, parity="N") as driver:
        assert (await stable_since(driver, time.monotonic())).kg == Decimal("1.234")
        health = await driver.supervisor.wait_for(State.DEGRADED, BOUND)
        assert "bit 7" in health.reason and "7E1" in health.reason


@aio
async def test_toledo_8217_strict_at_7e1_on_an_8n1_port_is_down_with_a_hint() -> None:
    """An 8217 that drops characters with parity errors never answers an 8N1 host: DOWN, and the
    reason says the port's framing is not the 8217's usual."""
    scale = Toledo8217(line=Line("7E1", "8N1"))
    async with driving(scale, "toledo-8217", bytesize=8, parity="N") as driver:
        health = await driver.supervisor.wait_for(State.DOWN, BOUND)
        assert "silent" in health.reason and "8N1" in health.reason and "7E1" in health.reason
        assert scale.ignored >= 1


@aio
async def test_toledo_8217_at_7e1_on_its_default_port_is_up() -> None:
    scale = Toledo8217(line=Line("7E1", "7E1"))
    scale.weight = Decimal("2.500")
    async with driving(scale, "toledo-8217") as driver:
        assert (await stable_since(driver, time.monotonic())).kg == Decimal("2.500")
        await driver.supervisor.wait_for(State.UP, BOUND)


@aio
async def test_one_frame_with_a_flipped_bit_7_is_not_a_framing_mismatch() -> None:
    """An 8N1 indicator, and noise flips bit 7 of one byte — in a frame whose every other byte has an
    odd number of ones, so the flip looks like odd parity. One such frame is noise, not a 7O1
    scale: the health must not say the port is wrong for the rest of the session."""
    frame = continuous_frame(Decimal("1111.10"), tare=Decimal("1111.11"), net=True)
    assert parity.bit7(frame) is None and sum(bin(b).count("1") % 2 == 0 for b in frame) == 1
    flipped = bytes(b | 0x80 if bin(b).count("1") % 2 == 0 else b for b in frame)
    assert parity.bit7(flipped) == "O"
    device = PtyDevice(Line("8N1", "8N1"))

    async def stream() -> None:
        while True:  # a noisy frame now and then among good ones
            for data in (flipped, frame, frame, frame, frame):
                device.send(data)
                await asyncio.sleep(0.01)

    async with driving(device, "toledo-continuous") as driver:
        streaming = asyncio.create_task(stream())
        try:
            assert (await stable_since(driver, time.monotonic())).kg == Decimal("1111.10")
            await driver.supervisor.wait_for(State.UP, BOUND)
            for _ in range(3):  # several noisy frames later, still UP
                await stable_since(driver, time.monotonic())
            assert driver.health.state == State.UP
        finally:
            streaming.cancel()
