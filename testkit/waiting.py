"""Bounded waits for device tests: poll a condition until it holds, and record a driver's health
states as they change. No test asserts on how long either took."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from devices.health import Health, State, SupervisedDriver


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.005)


def states_of(driver: SupervisedDriver) -> list[State]:
    """Every health state the driver's supervisor reports from now on, in order."""
    seen: list[State] = []

    def listener(health: Health) -> None:
        seen.append(health.state)

    driver.supervisor.subscribe(listener)
    return seen
