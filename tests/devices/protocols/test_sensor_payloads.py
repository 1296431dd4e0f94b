"""MQTT sensor payloads: valid messages decode and round-trip; anything else is one PayloadError."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.protocols.sensor_payloads import (
    MAX_PAYLOAD,
    ContainerResult,
    GateSensor,
    LoopDetector,
    PayloadError,
    PlateResult,
    SealRead,
    SensorPayload,
    SensorType,
    age_s,
    decode,
    encode,
    untimely,
)

TS = datetime(2024, 5, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))


def test_each_type_decodes() -> None:
    gate = decode("gate", "park/gate/1", b'{"state": "open", "ts": "2024-05-01T08:00:00+08:00"}')
    assert gate == GateSensor(state="open", ts=TS)
    loop = decode(SensorType.LOOP, "park/loop/1", b'{"occupied": true, "ts": 1714521600}')
    assert loop == LoopDetector(occupied=True, ts=datetime(2024, 5, 1, tzinfo=UTC))
    plate = decode(
        "plate",
        "park/plate/in-1",
        b'{"plate": "\xe7\xb2\xa4B12345", "confidence": 0.93, "lane": "in-1", "ts": 1714521600000,'
        b' "image_url": "http://10.0.0.5/snap/1.jpg"}',
    )
    assert isinstance(plate, PlateResult)
    assert plate.plate == "粤B12345" and plate.confidence == 0.93 and plate.image_url is not None
    assert plate.ts == datetime(2024, 5, 1, tzinfo=UTC)  # milliseconds told apart by magnitude


def test_container_numbers_are_kept_as_read() -> None:
    two = decode(
        "container",
        "park/container/in-1",
        b'{"numbers": ["CSQU3054383", "TGHU1234560"], "confidence": 0.88, "lane": "in-1",'
        b' "ts": "2024-05-01T08:00:00+08:00", "image_url": "https://10.0.0.6/c/1.jpg"}',
    )
    assert two == ContainerResult(
        numbers=("CSQU3054383", "TGHU1234560"),
        confidence=0.88,
        lane="in-1",
        ts=TS,
        image_url="https://10.0.0.6/c/1.jpg",
    )
    # a wrong check digit (…3 is right) and a short misread are what was read: the lane decides
    misread = decode("container", "t", b'{"numbers": ["CSQU3054384", "CSQU305"], "confidence": 0.4,'
                                      b' "lane": "in-1", "ts": 1714521600}')  # fmt: skip
    assert isinstance(misread, ContainerResult) and misread.numbers == ("CSQU3054384", "CSQU305")
    none = decode("container", "t", b'{"numbers": [], "confidence": 0, "lane": "in-1", "ts": 1714521600}')
    assert isinstance(none, ContainerResult) and none.numbers == () and none.image_url is None


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (b'["GS00012345", "GS00012346"]', ("GS00012345", "GS00012346")),
        (b'["GS00012345"]', ("GS00012345",)),
        (b"[]", ()),
        (b'"GS00012345|GS00012346"', ("GS00012345", "GS00012346")),  # the customs gate's form
        (b'"GS00012345|"', ("GS00012345",)),
        (b'"|GS00012346"', ("GS00012346",)),
        (b'"GS00012345"', ("GS00012345",)),
        (b'""', ()),
        (b'"|"', ()),
    ],
)
def test_seal_ids_as_a_list_or_as_the_customs_gate_writes_them(ids: bytes, expected: tuple[str, ...]) -> None:
    seal = decode("seal", "park/seal/in-1", b'{"ids": ' + ids + b', "lane": "in-1", "ts": 1714521600}')
    assert seal == SealRead(ids=expected, lane="in-1", ts=datetime(2024, 5, 1, tzinfo=UTC))
    assert decode("seal", "t", encode(seal)) == seal  # sent back as a list


def test_extra_fields_are_ignored_and_image_url_is_optional() -> None:
    payload = b'{"plate": "ABC", "confidence": 1, "lane": "out", "ts": 0, "vendor": {"x": 1}}'
    plate = decode("plate", "t", payload)
    assert isinstance(plate, PlateResult) and plate.image_url is None and plate.confidence == 1.0


@pytest.mark.parametrize(
    ("sensor_type", "payload", "kind", "words"),
    [
        ("loop", b'{"occupied": tru', "invalid_json", "invalid JSON"),
        ("loop", b"\xff\xfe\x00garbage", "invalid_json", "invalid JSON"),
        ("loop", b"", "invalid_json", "invalid JSON"),
        ("loop", b"[true]", "not_object", "not a JSON object (list)"),
        ("gate", b'"open"', "not_object", "not a JSON object (str)"),
        ("loop", b'{"ts": 1}', "missing_field", "missing field 'occupied'"),
        ("gate", b'{"state": "open"}', "missing_field", "missing field 'ts'"),
        ("loop", b'{"occupied": "yes", "ts": 1}', "wrong_type", "wrong type for 'occupied'"),
        ("loop", b'{"occupied": 1, "ts": 1}', "wrong_type", "wrong type for 'occupied'"),
        ("plate", b'{"plate": 123, "confidence": 0.5, "lane": "a", "ts": 1}', "wrong_type", "'plate'"),
        ("plate", b'{"plate": "A", "confidence": "0.5", "lane": "a", "ts": 1}', "wrong_type", "'confidence'"),
        ("loop", b'{"occupied": true, "ts": true}', "wrong_type", "wrong type for 'ts'"),
        ("gate", b'{"state": "ajar", "ts": 1}', "invalid_value", "invalid value for 'state'"),
        ("gate", b'{"state": 1, "ts": 1}', "wrong_type", "wrong type for 'state'"),
        ("plate", b'{"plate": "A", "confidence": 1.5, "lane": "a", "ts": 1}', "invalid_value", "confidence"),
        ("plate", b'{"plate": "A", "confidence": NaN, "lane": "a", "ts": 1}', "invalid_value", "confidence"),
        ("plate", b'{"plate": "  ", "confidence": 0.5, "lane": "a", "ts": 1}', "invalid_value", "'plate'"),
        (
            "plate",
            b'{"plate": "A", "confidence": 0.5, "lane": "a", "ts": 1, "image_url": "file:///etc/passwd"}',
            "invalid_value",
            "'image_url'",
        ),
        ("loop", b'{"occupied": true, "ts": "2024-05-01T08:00:00"}', "invalid_value", "timezone"),
        ("loop", b'{"occupied": true, "ts": 1e300}', "invalid_value", "'ts'"),
        ("loop", b"[" * 5000, "invalid_json", "recursion limit"),
        ("radar", b"{}", "unknown_type", "unknown sensor type 'radar'"),
        ("container", b'{"confidence": 1, "lane": "a", "ts": 1}', "missing_field", "'numbers'"),
        ("container", b'{"numbers": "CSQU3054383", "confidence": 1, "lane": "a", "ts": 1}', "wrong_type",
         "wrong type for 'numbers'"),
        ("container", b'{"numbers": [3054383], "confidence": 1, "lane": "a", "ts": 1}', "wrong_type",
         "'numbers.0'"),
        ("container", b'{"numbers": ["A", "B", "C"], "confidence": 1, "lane": "a", "ts": 1}',
         "invalid_value", "at most 2"),
        ("container", b'{"numbers": ["csqu3054383"], "confidence": 1, "lane": "a", "ts": 1}',
         "invalid_value", "'numbers.0'"),
        ("container", b'{"numbers": [""], "confidence": 1, "lane": "a", "ts": 1}', "invalid_value",
         "'numbers.0'"),
        ("container", b'{"numbers": ["CSQU 305438 3"], "confidence": 1, "lane": "a", "ts": 1}',
         "invalid_value", "'numbers.0'"),
        ("container", b'{"numbers": ["' + b"A" * 17 + b'"], "confidence": 1, "lane": "a", "ts": 1}',
         "invalid_value", "'numbers.0'"),
        ("container", b'{"numbers": [], "confidence": 2, "lane": "a", "ts": 1}', "invalid_value",
         "'confidence'"),
        ("seal", b'{"lane": "a", "ts": 1}', "missing_field", "missing field 'ids'"),
        ("seal", b'{"ids": "A|B|C", "lane": "a", "ts": 1}', "invalid_value", "at most 2"),
        ("seal", b'{"ids": ["A", "B", "C"], "lane": "a", "ts": 1}', "invalid_value", "at most 2"),
        ("seal", b'{"ids": 12345, "lane": "a", "ts": 1}', "wrong_type", "wrong type for 'ids'"),
        ("seal", b'{"ids": [12345], "lane": "a", "ts": 1}', "wrong_type", "'ids.0'"),
        ("seal", b'{"ids": {"a": 1}, "lane": "a", "ts": 1}', "wrong_type", "wrong type for 'ids'"),
        ("seal", b'{"ids": "GS 1", "lane": "a", "ts": 1}', "invalid_value", "'ids.0'"),
        ("seal", rb'{"ids": "GS1\u00001", "lane": "a", "ts": 1}', "invalid_value", "'ids.0'"),
        ("seal", rb'{"ids": ["\u5173\u9501"], "lane": "a", "ts": 1}', "invalid_value", "'ids.0'"),
        ("seal", b'{"ids": ["' + b"9" * 33 + b'"], "lane": "a", "ts": 1}', "invalid_value", "'ids.0'"),
        ("seal", b'{"ids": [], "lane": "", "ts": 1}', "invalid_value", "'lane'"),
    ],
)  # fmt: skip
def test_every_failure_is_one_precise_payload_error(
    sensor_type: str, payload: bytes, kind: str, words: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        decode(sensor_type, "park/x", payload)
    assert caught.value.kind == kind
    assert words in caught.value.reason
    assert "park/x" in str(caught.value)


def test_too_large_is_refused_before_parsing() -> None:
    payload = b'{"occupied": true, "ts": 1, "pad": "' + b"x" * MAX_PAYLOAD + b'"}'
    with pytest.raises(PayloadError) as caught:
        decode("loop", "t", payload)
    assert caught.value.kind == "too_large" and str(len(payload)) in caught.value.reason


def test_reasons_quote_hostile_values_briefly() -> None:
    payload = json.dumps({"state": "x" * 5000, "ts": 1}).encode()
    with pytest.raises(PayloadError) as caught:
        decode("gate", "t", payload)
    assert len(caught.value.reason) < 300


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(list(SensorType)), st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_payload_error(sensor_type: SensorType, payload: bytes) -> None:
    with contextlib.suppress(PayloadError):
        decode(sensor_type, "t", payload)


_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
_fields = st.fixed_dictionaries(
    {},
    optional={
        "state": st.sampled_from(["open", "closed", "ajar"]) | _json,
        "occupied": st.booleans() | _json,
        "plate": st.text(max_size=40) | _json,
        "confidence": st.floats(allow_nan=False) | _json,
        "lane": st.text(max_size=3) | _json,
        "ts": st.integers(-(2**70), 2**70) | st.text(max_size=30) | _json,
        "image_url": st.just("http://x/y.jpg") | _json,
        "numbers": st.lists(st.sampled_from(["CSQU3054383", "csqu", ""]) | st.text(max_size=20), max_size=3)
        | _json,
        "ids": st.lists(st.text(max_size=12), max_size=3) | st.text(max_size=40) | _json,
    },
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(list(SensorType)), _fields | _json)
def test_arbitrary_json_decodes_or_raises_payload_error(sensor_type: SensorType, value: object) -> None:
    with contextlib.suppress(PayloadError):
        decode(sensor_type, "t", json.dumps(value).encode())


_ts = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(9000, 1, 1),
    timezones=st.sampled_from([UTC, TS.tzinfo]),
)
_messages = st.one_of(
    st.builds(
        GateSensor,
        state=st.sampled_from(["open", "closed", "opening", "closing", "stopped", "fault"]),
        ts=_ts,
    ),
    st.builds(LoopDetector, occupied=st.booleans(), ts=_ts),
    st.builds(
        PlateResult,
        plate=st.text(min_size=1, max_size=32).filter(lambda s: s.strip() != ""),
        confidence=st.floats(0, 1),
        lane=st.text(min_size=1, max_size=64),
        ts=_ts,
        image_url=st.none() | st.from_regex(r"\Ahttps?://[a-z0-9./_-]{1,50}\Z"),
    ),
    st.builds(
        ContainerResult,
        numbers=st.lists(st.from_regex(r"\A[A-Z0-9]{1,16}\Z"), max_size=2).map(tuple),
        confidence=st.floats(0, 1),
        lane=st.text(min_size=1, max_size=64),
        ts=_ts,
        image_url=st.none() | st.from_regex(r"\Ahttps?://[a-z0-9./_-]{1,50}\Z"),
    ),
    st.builds(
        SealRead,
        ids=st.lists(st.from_regex(r"\A[A-Za-z0-9_-]{1,32}\Z"), max_size=2).map(tuple),
        lane=st.text(min_size=1, max_size=64),
        ts=_ts,
    ),
)
_TYPE_OF: dict[type[SensorPayload], SensorType] = {
    GateSensor: SensorType.GATE,
    LoopDetector: SensorType.LOOP,
    PlateResult: SensorType.PLATE,
    ContainerResult: SensorType.CONTAINER,
    SealRead: SensorType.SEAL,
}


@settings(max_examples=300, deadline=None)
@given(_messages)
def test_valid_payloads_round_trip(message: SensorPayload) -> None:
    assert decode(_TYPE_OF[type(message)], "t", encode(message)) == message


def test_epoch_seconds_and_iso_agree() -> None:
    iso = decode("gate", "t", b'{"state": "closed", "ts": "2024-05-01T00:00:00Z"}')
    epoch = decode("gate", "t", b'{"state": "closed", "ts": 1714521600}')
    assert iso == epoch


# --- the message's own time: too old, or dated ahead of this clock -----------------------------------
NOW = 1_714_521_600.0  # 2024-05-01T00:00:00Z


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        (NOW, None),
        (NOW - 5.0, None),  # exactly the limit still counts
        (NOW + 2.0, None),
        (NOW - 12.3, "stale sensor message on 'park/loop/1' (12.3 s old)"),
        (NOW + 30.0, "sensor message on 'park/loop/1' dated 30.0 s ahead of this clock"),
        (NOW * 1000 - 7_000, "stale sensor message on 'park/loop/1' (7.0 s old)"),  # milliseconds
    ],
)
def test_untimely_says_why_a_message_is_too_old_or_ahead(ts: float, reason: str | None) -> None:
    loop = decode("loop", "park/loop/1", json.dumps({"occupied": True, "ts": ts}).encode())
    assert untimely(loop, "park/loop/1", NOW, max_age_s=5.0, max_ahead_s=2.0) == reason


def test_age_is_the_same_whatever_the_zone() -> None:
    iso = decode("gate", "t", b'{"state": "open", "ts": "2024-05-01T07:59:50+08:00"}')
    assert age_s(iso, NOW) == pytest.approx(10.0)


@settings(max_examples=300, deadline=None)
@given(_messages, st.floats(-1e6, 1e6), st.floats(0.001, 3600), st.floats(0, 3600))
def test_untimely_exactly_outside_the_window(
    message: SensorPayload, offset: float, max_age: float, max_ahead: float
) -> None:
    now = message.ts.timestamp() + offset
    age = age_s(message, now)
    assert age == pytest.approx(offset, abs=1e-3)
    reason = untimely(message, "t", now, max_age_s=max_age, max_ahead_s=max_ahead)
    assert (reason is None) == (-max_ahead <= age <= max_age)
    if reason is not None:
        assert ("stale" in reason) == (age > max_age) and len(reason) < 200


@settings(max_examples=300, deadline=None)
@given(st.lists(st.from_regex(r"\A[A-Za-z0-9_-]{1,32}\Z"), max_size=2), st.booleans())
def test_the_pipe_form_and_the_list_form_of_seal_ids_agree(ids: list[str], trailing_pipe: bool) -> None:
    piped = "|".join(ids) + ("|" if trailing_pipe else "")
    as_list = decode("seal", "t", json.dumps({"ids": ids, "lane": "a", "ts": 1}).encode())
    as_pipe = decode("seal", "t", json.dumps({"ids": piped, "lane": "a", "ts": 1}).encode())
    assert as_list == as_pipe and isinstance(as_pipe, SealRead) and as_pipe.ids == tuple(ids)
