"""What a gate I/O module that will not work says about itself: nothing listening (connection
refused), connected but nothing answers on the configured unit id (and which unit does), a gateway
that gets no answer from the unit, and a module that answers but has no such address (a wrong
profile or address map). Modules from testkit/vendor_modbus.py, written from the vendors'
documents.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from bondgate.processes import free_port
from devices.drivers.gateio import GateIOConfig, GateIODriver
from devices.health import State
from devices.protocols.io_profiles import IOMap
from devices.transports.modbus import RtuEndpoint, TcpEndpoint
from testkit.vendor_modbus import RtuModule, TcpModule, UnitPolicy, adam6050, e1212

WAIT = 10.0
POINTS = {"inputs": {"photo_eye": 0}, "outputs": {"diverter": {"channel": 0}}}


def run(coro: Coroutine[Any, Any, None], timeout: float = 60) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def tcp(port: int, unit: int = 1, profile: str = "e1212") -> GateIOConfig:
    return GateIOConfig(
        endpoint=TcpEndpoint(host="127.0.0.1", port=port),
        device_id=unit,
        io=IOMap(profile=profile, **POINTS),  # type: ignore[arg-type]
        timeout_s=0.1,
    )


async def down_reason(config: GateIOConfig) -> str:
    async with GateIODriver("io", config) as driver:
        return (await driver.supervisor.wait_for(State.DOWN, WAIT)).reason


def test_nothing_listening_is_connection_refused() -> None:
    port = free_port()
    reason = asyncio.run(asyncio.wait_for(down_reason(tcp(port)), 30))
    assert f"127.0.0.1:{port}" in reason and "connection refused" in reason


def test_a_unit_id_the_module_does_not_answer_is_named_and_the_one_it_answers_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        async with TcpModule(e1212(), units=(1,)) as module:
            reason = await down_reason(tcp(module.port, unit=3))
            assert "unit 3" in reason and "no answer" in reason
            assert "answers unit 1" in reason
            assert module.connections >= 1

    with caplog.at_level("WARNING"):
        run(scenario())
    assert not [r for r in caplog.records if "took only one connection" in r.getMessage()]


def test_a_unit_id_nothing_answers_says_so() -> None:
    async def scenario() -> None:
        async with TcpModule(e1212(), units=(7,)) as module:
            reason = await down_reason(tcp(module.port, unit=3))
            assert "unit 3" in reason and "no answer" in reason and "answers unit" not in reason

    run(scenario())


@pytest.mark.parametrize("policy", ["gateway", "close"])
def test_a_gateway_or_a_module_that_turns_the_unit_away(policy: UnitPolicy) -> None:
    async def scenario() -> None:
        async with TcpModule(e1212(), units=(1,), other_unit=policy) as module:
            reason = await down_reason(tcp(module.port, unit=3))
            assert "unit 3" in reason
            if policy == "gateway":
                assert "gateway" in reason and "no answer" in reason
            else:
                assert "closed the connection" in reason and "answers unit 1" in reason

    run(scenario())


def test_rtu_unit_that_does_not_answer() -> None:
    async def scenario() -> None:
        async with RtuModule(adam6050(), units=(1,)) as module:
            config = GateIOConfig(
                endpoint=RtuEndpoint(port=module.path, baudrate=115200),
                device_id=3,
                io=IOMap(profile="adam6050", **POINTS),  # type: ignore[arg-type]
                timeout_s=0.1,
            )
            reason = await down_reason(config)
            assert "unit 3" in reason and "no answer" in reason and "answers unit 1" in reason

    run(scenario())


def test_an_address_the_module_does_not_have_points_at_the_profile() -> None:
    """An ADAM-6050 configured as an E1212: its 12 DIs cannot be read as 16, and coil 0 is not a DO."""

    async def scenario() -> None:
        async with TcpModule(adam6050(), units=(1,)) as module:
            health = await down_reason(tcp(module.port, profile="e1212"))
            assert "ILLEGAL_ADDRESS" in health
            assert "profile" in health and "e1212" in health

    run(scenario())
