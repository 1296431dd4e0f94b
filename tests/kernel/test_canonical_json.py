"""canonical_json is the signature and hash format central and edges share (docs/canonical-form.md):
the fast path must give the bytes of the recursive definition, for any payload, byte for byte; and
canonical_json_v1 must give the earlier form's bytes, which verifiers still accept."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.status import ClearanceStatus
from kernel.wire import (
    GENESIS_HASH,
    EventBody,
    EventKind,
    FeedRecord,
    canonical_json,
    canonical_json_v1,
    chain_event,
)


def reference_canonical_json(payload: dict[str, Any]) -> bytes:
    """The canonical form's definition, written out recursively from docs/canonical-form.md: null
    fields, empty lists and empty objects left out at any depth, decimals as exact strings,
    datetimes in UTC as YYYY-MM-DDTHH:MM:SS[.ffffff]Z, enums as their values."""

    def when(value: datetime) -> str:
        utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        micro = f".{utc.microsecond:06d}" if utc.microsecond else ""
        return f"{utc:%Y-%m-%dT%H:%M:%S}{micro}Z"

    def empty(value: Any) -> bool:
        return value is None or (isinstance(value, (list, dict)) and not value)

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: c for k, v in value.items() if not empty(c := clean(v))}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, datetime):
            return when(value)
        if isinstance(value, StrEnum):
            return value.value
        return value

    return json.dumps(clean(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def reference_canonical_json_v1(payload: dict[str, Any]) -> bytes:
    """kernel.wire's canonical form until 2026-12-05, still accepted when verifying."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, StrEnum):
            return value.value
        return value

    return json.dumps(clean(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Colour(StrEnum):
    RED = "red"
    ESCAPED = 'quote " and \\ and \n and 中文'


zones = st.sampled_from([None, UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-3, minutes=-30))])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(),
    st.decimals(),  # any: huge and tiny exponents, negative zero, NaN, sNaN, infinities
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=zones),
    st.sampled_from([*Colour, *ClearanceStatus, *EventKind]),
)
keys = st.one_of(
    st.text(max_size=12), st.sampled_from(["seq", "version", "grossWeight", "a", "A", "é", "中"])
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, values, max_size=16))
def test_same_bytes_as_the_recursive_implementation(payload: dict[str, Any]) -> None:
    assert canonical_json(payload) == reference_canonical_json(payload)
    assert canonical_json_v1(payload) == reference_canonical_json_v1(payload)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, st.one_of(scalars, st.floats()), max_size=16))
def test_same_bytes_for_flat_payloads_with_floats(payload: dict[str, Any]) -> None:
    assert canonical_json(payload) == reference_canonical_json(payload)


def test_same_bytes_for_the_records_and_events_that_are_signed_and_hashed() -> None:
    record = FeedRecord(
        seq=7,
        park_id="P1",
        invtNo=None,
        orderNo="BGORDER0000000001",
        ebpCode="4601660001",
        ebcCode="4601660002",
        logisticsCode="4601980001",
        logisticsNo="BGL000000000001",
        grossWeight=Decimal("0.800"),
        netWeight=Decimal("0.600"),
        goods="洗面奶 ×2; 维生素片 ×1",
        status=ClearanceStatus.RELEASED,
        cancelled=False,
        version=3,
        updated_at=datetime(2026, 11, 25, 12, 52, 50, 652207, tzinfo=UTC),
    )
    body = record.model_dump(mode="python", exclude={"seq", "signature"})
    expected = (
        '{"cancelled":false,"ebcCode":"4601660002","ebpCode":"4601660001","goods":"洗面奶 ×2; 维生素片 ×1",'
        '"grossWeight":"0.800","logisticsCode":"4601980001","logisticsNo":"BGL000000000001",'
        '"netWeight":"0.600","orderNo":"BGORDER0000000001","park_id":"P1","status":"800",'
        '"updated_at":"2026-11-25T12:52:50.652207Z","version":3}'
    ).encode()
    assert canonical_json(body) == reference_canonical_json(body) == expected
    # the same record as the wire carries it (JSON), parsed back: the same bytes
    wire = json.loads(record.model_dump_json(exclude={"seq", "signature"}))
    assert canonical_json(wire) == expected
    event = chain_event(
        GENESIS_HASH,
        edge_id="edge-1",
        seq=1,
        kind=EventKind.RELEASE,
        station="line-1",
        occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        body=EventBody(logisticsNo="BGL000000000001", codes=["WEIGHT_MISMATCH"], weight_kg=Decimal("1.25")),
    )
    hashed = event.model_dump(mode="python", exclude={"hash"})
    assert canonical_json(hashed) == reference_canonical_json(hashed)


def test_what_json_cannot_carry_fails_the_same_way() -> None:
    for payload in ({"when": datetime(2026, 1, 1).date()}, {"nested": {"x": object()}}, {1: "a", "b": 2}):
        errors = []
        for implementation in (canonical_json, reference_canonical_json):
            try:
                implementation(payload)  # type: ignore[arg-type]
            except TypeError as exc:
                errors.append(type(exc))
        assert errors == [TypeError, TypeError], payload
