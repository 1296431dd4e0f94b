"""The supervisor's health: DOWN at once, DEGRADED with hysteresis, log lines rate-limited.

Time is driven by hand (a clock the test advances) wherever the supervisor allows it; where the
event loop's timer is the subject, waits are bounded and nothing asserts on a duration."""

from __future__ import annotations

import asyncio
import logging

import pytest

from devices.health import Health, State, Supervisor

BOUND = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _never(_: Supervisor) -> None:
    await asyncio.Event().wait()


def _supervisor(clock: Clock, **kw: float) -> tuple[Supervisor, list[Health]]:
    sup = Supervisor("dev", _never, clock=clock, **kw)
    changes: list[Health] = []
    sup.subscribe(changes.append)
    return sup, changes


def test_one_bad_frame_in_four_at_20_hz_is_one_change_not_one_per_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    sup, changes = _supervisor(clock)
    sup.seen()
    caplog.set_level(logging.INFO, logger="devices.health")
    caplog.clear()
    for i in range(200):  # 10 s at 20 Hz
        clock.now += 0.05
        if i % 4 == 3:
            sup.fault("noise on the line")
        else:
            sup.seen()
    states = [h.state for h in changes]
    assert states == [State.UP, State.DEGRADED]
    assert sup.health.errors == 50  # every bad frame is still counted
    assert len(caplog.records) == 1 and caplog.records[0].getMessage() == "device degraded"
    # the faults stop: UP again once a clean spell of recover_after_s has passed, not before
    clock.now += 1.0
    sup.seen()
    assert sup.health.state == State.DEGRADED
    clock.now += 2.5
    sup.seen()
    assert [h.state for h in changes][-1] == State.UP and len(changes) == 3


def test_a_new_reason_while_degraded_is_kept_without_a_change() -> None:
    clock = Clock()
    sup, changes = _supervisor(clock)
    sup.seen()
    sup.fault("noise on the line")
    sup.fault("over-long line")
    assert sup.health.reason == "over-long line" and sup.health.errors == 2
    assert [h.state for h in changes] == [State.UP, State.DEGRADED]


def test_down_is_never_delayed_and_a_device_back_is_up_at_once() -> None:
    clock = Clock()
    sup, changes = _supervisor(clock)
    sup.seen()
    sup.fault("timeout")
    clock.now += 0.01
    sup.down("connection lost")
    assert sup.health.state == State.DOWN and sup.health.reason == "connection lost"
    clock.now += 0.01
    sup.seen()  # a new session: stations act on DOWN -> UP (outputs re-driven safe), no waiting
    assert [h.state for h in changes] == [State.UP, State.DEGRADED, State.DOWN, State.UP]


def test_state_change_log_lines_are_rate_limited_and_say_how_many_were_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    sup, changes = _supervisor(clock)
    caplog.set_level(logging.INFO, logger="devices.health")
    for _ in range(50):  # a device that drops and comes back 50 times in 5 s
        clock.now += 0.05
        sup.down("connection lost")
        clock.now += 0.05
        sup.seen()
    assert len(changes) == 100  # listeners (stations) hear every change
    assert len(caplog.records) <= 6
    clock.now += 60
    sup.down("connection lost")
    last = caplog.records[-1]
    assert last.getMessage() == "device down"
    assert getattr(last, "changes_not_logged", 0) == 100 - (len(caplog.records) - 1)


def test_a_device_gone_quiet_after_a_fault_is_up_again_on_its_own() -> None:
    asyncio.run(_gone_quiet())


async def _gone_quiet() -> None:
    sup = Supervisor("dev", _never, recover_after_s=0.05)
    sup.seen()
    sup.fault("noise on the line")
    assert sup.health.state == State.DEGRADED
    assert (await sup.wait_for(State.UP, BOUND)).state == State.UP


def test_a_device_down_meanwhile_is_not_brought_up_by_the_quiet_timer() -> None:
    asyncio.run(_down_meanwhile())


async def _down_meanwhile() -> None:
    sup = Supervisor("dev", _never, recover_after_s=0.05)
    sup.seen()
    sup.fault("noise on the line")
    sup.down("connection lost")
    with pytest.raises(TimeoutError):
        await sup.wait_for(State.UP, 0.3)
    assert sup.health.state == State.DOWN and sup._recover_timer is None


# --- standing conditions (outside finding: a stale sensor was UP again 3 s later on its own) ---------
def test_a_standing_condition_keeps_the_device_degraded_until_it_is_cleared() -> None:
    clock = Clock()
    sup, changes = _supervisor(clock)
    sup.seen()
    stale = "stale sensor message on 'loop/1' (8.0 s old)"
    sup.set_condition("stale:loop1", stale)
    assert (sup.health.state, sup.health.reason) == (State.DEGRADED, stale)
    assert sup.health.errors == 1
    for _ in range(10):  # good frames of other sensors, long after the condition: still DEGRADED
        clock.now += 1.0
        sup.seen()
    assert sup.health.state == State.DEGRADED
    sup.set_condition("refused", "subscription refused: a/b (Not authorized)")
    assert sup.health.reason == "subscription refused: a/b (Not authorized)"  # the latest one's
    sup.clear_condition("refused")
    assert (sup.health.state, sup.health.reason) == (State.DEGRADED, stale)
    sup.clear_condition("refused")  # clearing what does not stand changes nothing
    sup.clear_condition("stale:loop1")
    assert sup.health.state == State.DEGRADED  # the quiet spell since the last condition first
    clock.now += 3.5
    sup.seen()
    assert sup.health.state == State.UP
    assert [h.state for h in changes] == [State.UP, State.DEGRADED, State.DEGRADED, State.DEGRADED, State.UP]


def test_down_overrides_a_condition_and_a_session_back_is_degraded_not_up() -> None:
    clock = Clock()
    sup, _ = _supervisor(clock)
    sup.seen()
    sup.set_condition("stale:loop1", "stale")
    sup.down("connection lost")
    assert sup.health.state == State.DOWN
    clock.now += 10
    sup.seen()
    assert (sup.health.state, sup.health.reason) == (State.DEGRADED, "stale")
    sup.down("connection lost")
    sup.set_condition("refused", "subscription refused")  # while DOWN: kept for when it is back
    assert sup.health.state == State.DOWN
    sup.seen()
    assert (sup.health.state, sup.health.reason) == (State.DEGRADED, "subscription refused")


def test_a_fault_while_a_condition_stands_gives_way_to_it_after_the_quiet_spell() -> None:
    clock = Clock()
    sup, _ = _supervisor(clock)
    sup.seen()
    sup.set_condition("stale:loop1", "stale")
    clock.now += 1
    sup.fault("rejected payload")
    assert sup.health.reason == "rejected payload"
    clock.now += 1
    sup.seen()
    assert sup.health.reason == "rejected payload"
    clock.now += 3
    sup.seen()
    assert (sup.health.state, sup.health.reason) == (State.DEGRADED, "stale")


def test_the_quiet_timer_does_not_bring_a_device_with_a_condition_up() -> None:
    asyncio.run(_timer_and_condition())


async def _timer_and_condition() -> None:
    sup = Supervisor("dev", _never, recover_after_s=0.05)
    sup.seen()
    sup.fault("noise on the line")
    sup.set_condition("stale:loop1", "stale")
    with pytest.raises(TimeoutError):
        await sup.wait_for(State.UP, 0.3)
    assert (sup.health.state, sup.health.reason) == (State.DEGRADED, "stale")
    sup.clear_condition("stale:loop1")
    assert (await sup.wait_for(State.UP, BOUND)).state == State.UP
