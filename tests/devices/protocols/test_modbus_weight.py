"""Weight register maps: exact round trips for every layout, hostile registers, validation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from devices.protocols.modbus_weight import (
    GENERIC_INT32,
    WeightDecodeError,
    WeightMap,
    decode,
    encode,
)

RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
SCALES = [Decimal(1), Decimal("0.1"), Decimal("0.01"), Decimal("0.001"), Decimal("0.005"), Decimal(2)]


def make(**kw: object) -> WeightMap:
    base: dict[str, object] = {"weight_address": 10, "status_address": 12, "motion_bit": 0, "overload_bit": 1}
    return WeightMap(**(base | kw))


@st.composite
def integer_case(draw: st.DrawFn) -> tuple[WeightMap, Decimal]:
    kind = draw(st.sampled_from(sorted(RANGES)))
    m = make(
        weight_type=kind,
        scale=draw(st.sampled_from(SCALES)),
        word_order=draw(st.sampled_from(["high_first", "low_first"])),
        byte_swap=draw(st.booleans()),
        status_address=11 if kind.endswith("16") else 12,
    )
    raw = draw(st.integers(*RANGES[kind]))
    return m, raw * m.scale


@given(integer_case(), st.booleans(), st.booleans())
def test_integer_maps_round_trip_exactly(case: tuple[WeightMap, Decimal], motion: bool, net: bool) -> None:
    m, kg = case
    m = m.model_copy(update={"net_bit": 3})
    value = decode(m, encode(m, kg, motion=motion, net=net))
    assert value.kg == kg
    assert (value.motion, value.stable, value.net, value.overload) == (motion, not motion, net, False)


@given(
    mantissa=st.integers(-999_999, 999_999),
    decimals=st.integers(0, 3),
    word_order=st.sampled_from(["high_first", "low_first"]),
    byte_swap=st.booleans(),
    in_grams=st.booleans(),
)
def test_float32_round_trips_six_significant_digits(
    mantissa: int, decimals: int, word_order: str, byte_swap: bool, in_grams: bool
) -> None:
    resolution = Decimal(1).scaleb(-decimals)
    m = make(
        weight_type="float32",
        word_order=word_order,
        byte_swap=byte_swap,
        scale=Decimal("0.001") if in_grams else Decimal(1),
        resolution=resolution,
    )
    kg = mantissa * resolution
    assert decode(m, encode(m, kg)).kg == kg


@given(magnitude=st.integers(0, 2**32 - 1), negative=st.booleans())
def test_sign_bit_with_unsigned_magnitude(magnitude: int, negative: bool) -> None:
    m = make(weight_type="uint32", scale=Decimal("0.01"), negative_bit=4)
    kg = (-magnitude if negative else magnitude) * m.scale
    regs = encode(m, kg)
    assert bool(regs[12] & 0x10) == (negative and magnitude != 0)
    assert decode(m, regs).kg == kg


def test_word_and_byte_order_on_the_wire() -> None:
    """123456 counts = 0x0001E240: what each layout puts in registers 10 and 11."""
    kg = Decimal("123.456")
    layouts = {
        ("high_first", False): [0x0001, 0xE240],  # ABCD
        ("low_first", False): [0xE240, 0x0001],  # CDAB
        ("high_first", True): [0x0100, 0x40E2],  # BADC
        ("low_first", True): [0x40E2, 0x0100],  # DCBA
    }
    for (order, swap), words in layouts.items():
        m = make(word_order=order, byte_swap=swap, scale=Decimal("0.001"))
        regs = encode(m, kg)
        assert [regs[10], regs[11]] == words
        assert decode(m, {10: words[0], 11: words[1], 12: 0}).kg == kg


def test_generic_map_reads_one_block_and_flags() -> None:
    assert GENERIC_INT32.read_blocks() == [(0, 3)]
    regs = encode(GENERIC_INT32, Decimal("12.345"), motion=True)
    assert regs == {0: 0, 1: 12345, 2: 1}
    value = decode(GENERIC_INT32, regs)
    assert value.kg == Decimal("12.345") and not value.stable
    over = decode(GENERIC_INT32, encode(GENERIC_INT32, None, overload=True))
    assert over.kg is None and over.overload and not over.underload
    assert not over.stable  # no weight, so nothing stable to take (as the serial scales say)
    under = decode(GENERIC_INT32, {0: 0xFFFF, 1: 0xFFFF, 2: 0b100})
    assert under.kg is None and under.underload and not under.stable


def test_far_apart_registers_are_two_reads() -> None:
    assert make(weight_address=0, status_address=100).read_blocks() == [(0, 2), (100, 1)]
    assert make(weight_address=20, status_address=15).read_blocks() == [(15, 7)]


def test_weight_and_status_within_max_span_are_one_read() -> None:
    """One request whenever the map allows (outside finding: an RTU answer that came late was taken
    for the other register's): 20 registers apart is one span of 21; `max_span` bounds it, and
    `apart` is what a driver asks for when the indicator refuses the registers in between."""
    status_first = make(weight_address=20, weight_type="int16", status_address=0)
    assert status_first.read_blocks() == [(0, 21)]
    assert status_first.read_blocks(apart=True) == [(0, 1), (20, 1)]
    assert make(weight_address=20, weight_type="int16", status_address=0, max_span=20).read_blocks() == [
        (0, 1),
        (20, 1),
    ]
    assert make(weight_address=0, status_address=31).read_blocks() == [(0, 32)]  # int32: 0-1
    assert make(weight_address=0, status_address=32).read_blocks() == [(0, 2), (32, 1)]


def test_encode_refuses_what_the_map_cannot_hold() -> None:
    m = make(weight_type="int16", status_address=11, scale=Decimal("0.001"))
    with pytest.raises(ValueError, match="whole number"):
        encode(m, Decimal("1.0005"))
    assert encode(m, Decimal("1.0005"), exact=False)[10] == 1000  # half-even, like a display division
    with pytest.raises(ValueError, match="does not fit"):
        encode(m, Decimal(40))
    with pytest.raises(ValueError, match="does not fit"):
        encode(make(weight_type="uint32"), Decimal(-1))


def test_decode_errors() -> None:
    with pytest.raises(WeightDecodeError, match="register 11"):
        decode(GENERIC_INT32.model_copy(update={"weight_address": 10, "status_address": 12}), {10: 0, 12: 0})
    with pytest.raises(WeightDecodeError, match="16-bit"):
        decode(GENERIC_INT32, {0: 0, 1: 70000, 2: 0})
    nan = make(weight_type="float32")
    with pytest.raises(WeightDecodeError, match="nan"):
        decode(nan, {10: 0x7FC0, 11: 0, 12: 0})


@given(
    st.lists(st.integers(0, 0xFFFF), min_size=3, max_size=3), st.sampled_from(["int32", "float32", "uint16"])
)
def test_any_registers_decode_or_raise_our_error(words: list[int], kind: str) -> None:
    m = WeightMap(weight_address=0, status_address=2, weight_type=kind, motion_bit=15, scale=Decimal("0.001"))
    try:
        value = decode(m, dict(enumerate(words)))
    except WeightDecodeError:
        return
    assert value.kg is None or isinstance(value.kg, Decimal)


@given(
    st.lists(st.integers(0, 0xFFFF), min_size=3, max_size=3),
    st.sampled_from(["int32", "uint32", "float32", "int16"]),
)
def test_a_stable_value_always_has_a_weight(words: list[int], kind: str) -> None:
    """Whatever the registers hold: stable means a weight in range, never over or under range."""
    m = WeightMap(
        weight_address=0,
        status_address=2,
        weight_type=kind,
        motion_bit=0,
        overload_bit=1,
        underload_bit=2,
        scale=Decimal("0.001"),
    )
    try:
        value = decode(m, dict(enumerate(words)))
    except WeightDecodeError:
        return
    assert value.stable == (value.kg is not None and not value.motion)
    assert not (value.stable and (value.overload or value.underload))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"overload_bit": 0}, "overload_bit: bit 0 is already motion_bit"),
        ({"status_address": 11}, "overlaps"),
        ({"negative_bit": 5}, "unsigned"),
        ({"scale": Decimal(0)}, "scale"),
        ({"motion_bit": 16}, "motion_bit"),
    ],
)
def test_map_validation(kw: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        make(**kw)
