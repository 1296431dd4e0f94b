"""Module profiles, named points and edge detection: pure, no Modbus."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from devices.protocols.io_profiles import (
    InputPoint,
    InputTracker,
    IOMap,
    ModuleProfile,
    adam6050,
    e1212,
    profile_named,
)

GATE = {
    "inputs": {"photo_eye_1": 0, "photo_eye_2": 1, "loop": 2, "barrier_open": 3, "barrier_closed": 4},
    "outputs": {
        "barrier": 0,
        "diverter_left": 1,
        "diverter_right": 2,
        "light_red": {"channel": 3, "safe": True},
    },
}


def test_builtin_profiles_match_the_module_manuals() -> None:
    e = e1212()
    assert (e.di_address, e.di_count, e.do_address, e.do_count) == (0, 16, 0, 8)
    a = adam6050()
    assert (a.di_address, a.di_count, a.do_address, a.do_count) == (0, 12, 16, 6)
    assert a.di_word_register == 300  # 40301
    assert adam6050(do_address=17).do(0) == 17
    assert profile_named("ADAM-6050") == a
    assert profile_named("E1212") == e


def test_points_by_channel_become_addresses_per_profile() -> None:
    on_e1212 = IOMap(profile="e1212", **GATE)
    on_adam = IOMap(profile="adam6050", **GATE)
    assert on_e1212.coil("diverter_left") == 1
    assert on_adam.coil("diverter_left") == 17
    assert on_adam.outputs["light_red"].safe is True
    assert on_adam.outputs["barrier"].safe is False


def test_builtin_profile_with_overrides_from_config() -> None:
    io = IOMap.model_validate({"profile": {"name": "ADAM-6050", "do_address": 17}, "outputs": {"barrier": 0}})
    assert io.coil("barrier") == 17
    assert io.profile.di_count == 12


def test_custom_profile() -> None:
    custom = ModuleProfile(name="plc", di_address=100, di_count=32, do_address=500, do_count=4)
    io = IOMap(profile=custom, inputs={"eye": 31}, outputs={"horn": 3})
    assert io.coil("horn") == 503
    assert io.profile.di(31) == 131


@pytest.mark.parametrize(
    ("points", "words"),
    [
        ({"inputs": {"photo_eye_9": 12}}, ["photo_eye_9", "DI0–DI11", "adam6050"]),
        ({"outputs": {"barrier": 6}}, ["barrier", "DO0–DO5"]),
        ({"outputs": {"barrier": 0, "diverter": 0}}, ["diverter", "DO0", "'barrier'"]),
        ({"inputs": {"bad name": 0}}, ["bad name", "identifier"]),
        ({"inputs": {"eye": -1}}, ["eye", "channel"]),
    ],
)
def test_validation_errors_name_the_point(points: dict, words: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        IOMap(profile="adam6050", **points)
    message = str(caught.value)
    for word in words:
        assert word in message


def test_unknown_profile_and_bad_ranges() -> None:
    with pytest.raises(ValidationError, match="unknown module profile"):
        IOMap(profile="wago750")
    with pytest.raises(ValidationError, match="past address 65535"):
        ModuleProfile(name="x", di_address=65535, di_count=2, do_count=1)


def tracker(**kw: bool) -> InputTracker:
    inputs = {
        "eye": InputPoint(channel=0),
        "loop": InputPoint(channel=2),
        "nc": InputPoint(channel=3, invert=True),
    }
    return InputTracker("gate1", inputs, **kw)


def test_first_poll_establishes_state_silently_then_edges_are_reported() -> None:
    t = tracker()
    assert t.update([False, False, False, False], at=1.0) == []
    assert t.state == {"eye": False, "loop": False, "nc": True}
    events = t.update([True, True, False, True], at=2.0)
    assert [(e.point, e.value, e.at, e.device) for e in events] == [
        ("eye", True, 2.0, "gate1"),
        ("nc", False, 2.0, "gate1"),
    ]  # channel 1 is not a configured point
    assert t.update([True, False, False, True], at=3.0) == []


def test_emit_initial_reports_every_point_once() -> None:
    t = tracker(emit_initial=True)
    assert {(e.point, e.value) for e in t.update([True, False, True, False], at=1.0)} == {
        ("eye", True),
        ("loop", True),
        ("nc", True),
    }
    assert t.update([True, False, True, False], at=2.0) == []


def test_short_read_names_the_point() -> None:
    with pytest.raises(ValueError, match="'nc'"):
        tracker().update([False, False, False], at=0.0)


@given(st.lists(st.lists(st.booleans(), min_size=4, max_size=4), min_size=1, max_size=30))
def test_replaying_events_reconstructs_the_polled_state(polls: list[list[bool]]) -> None:
    """Whatever the sequence: initial state plus the emitted edges equals the latest poll."""
    t = tracker(emit_initial=True)
    seen: dict[str, bool] = {}
    for i, bits in enumerate(polls):
        events = t.update(bits, at=float(i))
        for e in events:
            assert seen.get(e.point) != e.value  # an event is always a change
            seen[e.point] = e.value
        assert seen == t.state
