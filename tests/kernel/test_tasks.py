"""Stopping for sure: a task that swallows its cancel (as Python 3.11's wait_for can, gh-86296) still
ends, and a device supervisor whose session swallows the cancel stops instead of reconnecting."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from devices.health import State, SupervisedDriver, Supervisor
from kernel.tasks import SupervisedTasks, TaskHealth, TaskState, cancel_and_wait


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

    with caplog.at_level(logging.ERROR, logger="kernel.tasks"):
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

    with caplog.at_level(logging.ERROR, logger="kernel.tasks"):
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


# --- supervised long-lived tasks -------------------------------------------------------------------


def test_a_failing_task_is_restarted_shown_down_and_logged_once_each_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A task that fails on its first three starts: DOWN with its error (one log line), restarted with
    backoff, and UP again (one log line) once a start has run `settle_s` without failing."""

    async def scenario() -> list[TaskHealth]:
        starts: list[int] = []
        healthy = asyncio.Event()

        async def flaky() -> None:
            starts.append(1)
            if len(starts) <= 3:
                raise OSError("database or disk is full")
            healthy.set()
            await asyncio.Event().wait()

        tasks = SupervisedTasks(backoff_initial=0.01, backoff_max=0.02, settle_s=0.05)
        tasks.start("uplink", flaky)
        seen = []
        async with asyncio.timeout(10):
            while not tasks.down():
                await asyncio.sleep(0.001)
            seen.append(tasks.health()["uplink"])
            await healthy.wait()
            while tasks.down():
                await asyncio.sleep(0.001)
            seen.append(tasks.health()["uplink"])
        await tasks.stop()
        return seen

    with caplog.at_level(logging.INFO, logger="kernel.tasks"):
        down, up = asyncio.run(scenario())
    assert down.state is TaskState.DOWN and down.last_error == "OSError: database or disk is full"
    assert (up.state, up.failures, up.restarts) == (TaskState.UP, 3, 3)
    messages = [(r.getMessage(), r.task) for r in caplog.records]  # type: ignore[attr-defined]
    assert messages == [("task failed; restarting it with backoff", "uplink"), ("task recovered", "uplink")]


def test_a_task_that_returns_is_a_failure_and_stop_ends_every_task() -> None:
    async def scenario() -> tuple[TaskHealth, int]:
        runs: list[int] = []

        async def returns() -> None:
            runs.append(1)

        tasks = SupervisedTasks(backoff_initial=0.01, backoff_max=0.01, settle_s=60)
        tasks.start("heartbeat", returns)
        tasks.start("sync", asyncio.Event().wait)
        async with asyncio.timeout(10):
            while len(runs) < 3:
                await asyncio.sleep(0.001)
        health = tasks.health()["heartbeat"]
        assert tasks.health()["sync"].state is TaskState.UP
        await tasks.stop()
        count = len(runs)
        await asyncio.sleep(0.05)
        return health, len(runs) - count

    health, after_stop = asyncio.run(scenario())
    assert health.state is TaskState.DOWN and health.last_error == "ended"
    assert after_stop == 0
