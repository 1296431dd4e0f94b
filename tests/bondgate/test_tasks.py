"""Stopping for sure: a task that swallows its cancel (as Python 3.11's wait_for can, gh-86296) still
ends, and a device supervisor whose session swallows the cancel stops instead of reconnecting."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from bondgate.tasks import cancel_and_wait
from devices.health import State, SupervisedDriver, Supervisor


async def _swallows_first_cancel(ended: list[str]) -> None:
    with contextlib.suppress(asyncio.CancelledError):  # what a racing wait_for does: lost
        await asyncio.Event().wait()
    try:
        await asyncio.Event().wait()
    finally:
        ended.append("ended")


def test_a_swallowed_cancel_is_delivered_again() -> None:
    async def scenario() -> list[str]:
        ended: list[str] = []
        task = asyncio.create_task(_swallows_first_cancel(ended), name="stubborn")
        await asyncio.sleep(0)
        await cancel_and_wait([task], grace_s=0.01, retry_s=0.01)
        assert task.done()
        return ended

    assert asyncio.run(scenario()) == ["ended"]


def test_a_task_that_failed_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    async def scenario() -> None:
        failed = asyncio.create_task(fails(), name="fails")
        await asyncio.sleep(0)
        await cancel_and_wait([failed, None])

    with caplog.at_level(logging.ERROR, logger="bondgate.tasks"):
        asyncio.run(scenario())
    assert [r.getMessage() for r in caplog.records] == ["task failed while stopping"]


def test_a_task_that_will_not_stop_is_named_and_given_up_on(caplog: pytest.LogCaptureFixture) -> None:
    async def never_stops(release: asyncio.Event) -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    async def scenario() -> None:
        release = asyncio.Event()
        task = asyncio.create_task(never_stops(release), name="immortal")
        await asyncio.sleep(0)
        await cancel_and_wait([task], grace_s=0.01, retry_s=0.01, give_up_s=0.05)
        assert not task.done()
        release.set()
        await task

    with caplog.at_level(logging.ERROR, logger="bondgate.tasks"):
        asyncio.run(scenario())
    assert [(r.getMessage(), r.tasks) for r in caplog.records] == [("tasks did not stop", ["immortal"])]


class _Driver(SupervisedDriver):
    def __init__(self, session_started: asyncio.Event) -> None:
        self.name = "stubborn"
        self.sessions = 0

        async def session(sup: Supervisor) -> None:
            self.sessions += 1
            sup.seen()
            session_started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                return  # swallowed: the session just "ends"

        self.supervisor = Supervisor("stubborn", session)


def test_a_supervisor_whose_session_swallows_the_cancel_stops_and_does_not_reconnect() -> None:
    async def scenario() -> _Driver:
        started = asyncio.Event()
        driver = _Driver(started)
        await driver.start()
        await started.wait()
        await driver.stop()
        return driver

    driver = asyncio.run(scenario())
    assert driver.sessions == 1
    assert driver.supervisor.health.state == State.UP  # not marked DOWN: it was stopped, not lost


def test_cleanup_after_the_first_cancel_is_not_cut_short() -> None:
    """A `finally` that takes a while (a barrier's "off" on a slow module) gets its grace period."""

    async def slow_cleanup(done: list[str]) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.3)  # longer than one retry interval, shorter than the grace
            done.append("off sent")

    async def scenario() -> list[str]:
        done: list[str] = []
        task = asyncio.create_task(slow_cleanup(done))
        await asyncio.sleep(0)
        await cancel_and_wait([task])
        return done

    assert asyncio.run(scenario()) == ["off sent"]
