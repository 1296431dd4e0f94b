"""The scanner parser, tested the h11 way: every example whole, split at every byte, one byte at a
time and with trailing data; fuzzed bytes never raise; random frames round-trip exactly. Time is
an argument everywhere (partial timeout, dedupe window): nothing here sleeps or reads a clock."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from devices.protocols.need_data import NEED_DATA
from devices.protocols.scanner import (
    SAMPLE,
    SYMBOLOGIES,
    Deduper,
    Discarded,
    Frame,
    NoReadFrame,
    ScannerEvent,
    ScannerParser,
    ScannerProtocolConfig,
    ScannerProtocolError,
    encode_frame,
    split_aim,
)

T = 100.0  # the `now` given with every chunk unless a test is about time

JD = "JD014600006123456789"
SSCC = "00376123450000000016"


def frame(code: str, aim: str | None = "]C0", carrier: str | None = None, **kw: Any) -> Frame:
    symbology = None if aim is None else SYMBOLOGIES.get(aim, "unknown")
    return Frame(code, aim, symbology, carrier, kw.pop("at", T), **kw)


def noise(detail: str, data: bytes) -> Discarded:
    return Discarded("noise", detail, data[:SAMPLE], T)


def feed(config: ScannerProtocolConfig, chunks: Iterable[bytes], now: float = T) -> list[ScannerEvent]:
    parser = ScannerParser(config)
    events: list[ScannerEvent] = []
    for chunk in chunks:
        parser.receive_data(chunk, now)
        while (event := parser.next_event()) is not NEED_DATA:
            events.append(event)
    return events


def all_chunkings(config: ScannerProtocolConfig, data: bytes, expected: list[Any]) -> None:
    """Whole, split at every byte, one byte at a time, with trailing data: the same events."""
    assert feed(config, [data]) == expected
    for i in range(len(data) + 1):
        assert feed(config, [data[:i], data[i:]]) == expected, i
    assert feed(config, [data[i : i + 1] for i in range(len(data))]) == expected
    # trailing bytes of a next frame change nothing until their own terminator or timeout
    assert feed(config, [data + b"]C0N"]) == expected
    assert feed(config, [data, b"\x02]C"]) == expected


DEFAULT = ScannerProtocolConfig()
STX_ETX = ScannerProtocolConfig(prefix=b"\x02", suffix=b"\x03")
CARRIERS = ScannerProtocolConfig(carriers={"jd": r"JD\d{18}", "sscc": r"00\d{18}"})

EXAMPLES: list[tuple[str, ScannerProtocolConfig, bytes, list[Any]]] = [
    ("waybill CR", DEFAULT, b"]C0JD014600006123456789\r", [frame(JD)]),
    ("waybill LF", DEFAULT, b"]C0JD014600006123456789\n", [frame(JD)]),
    ("waybill CRLF", DEFAULT, b"]C0JD014600006123456789\r\n", [frame(JD)]),
    ("sscc", DEFAULT, b"]C100376123450000000016\r", [frame(SSCC, "]C1")]),
    ("ean-13", DEFAULT, b"]E04006381333931\r", [frame("4006381333931", "]E0")]),
    ("ean-8", DEFAULT, b"]E496385074\r\n", [frame("96385074", "]E4")]),
    ("code 39", DEFAULT, b"]A0CODE 39 A\r", [frame("CODE 39 A", "]A0")]),
    ("itf", DEFAULT, b"]I112345678\r", [frame("12345678", "]I1")]),
    ("qr utf-8", DEFAULT, "]Q1https://e.example/运单/1\r".encode(),
     [frame("https://e.example/运单/1", "]Q1")]),
    ("datamatrix gs1 with GS", DEFAULT, b"]d101095011010209171719050810ABCD1234\x1d2110\r",
     [frame("01095011010209171719050810ABCD1234\x1d2110", "]d1")]),
    ("unknown aim", DEFAULT, b"]e0012345\r", [frame("012345", "]e0")]),
    ("no aim", DEFAULT, b"JD014600006123456789\r", [frame(JD, None)]),
    ("aim off keeps ]", ScannerProtocolConfig(aim="off"), b"]C0ABC\r", [frame("]C0ABC", None)]),
    ("aim required", ScannerProtocolConfig(aim="required"), b"3456789\r]C0AB\r",
     [noise("no AIM identifier", b"3456789"), frame("AB")]),
    ("bracket is data", DEFAULT, b"]C\r]\r", [frame("]C", None), frame("]", None)]),
    ("prefix and suffix", STX_ETX, b"\x02]C0JD014600006123456789\x03\r\n", [frame(JD)]),
    ("missing prefix", STX_ETX, b"]C0AB\x03\r", [noise("missing prefix", b"]C0AB\x03")]),
    ("missing suffix", STX_ETX, b"\x02]C0AB\r", [noise("missing suffix", b"\x02]C0AB")]),
    ("prefix is not data", STX_ETX, b"\x02\x03\r", [noise("no data", b"\x02\x03")]),
    ("noread", DEFAULT, b"NOREAD\r\nNR\r", [NoReadFrame(T), NoReadFrame(T)]),
    ("noread with affixes", STX_ETX, b"\x02NOREAD\x03\rNOREAD\r", [NoReadFrame(T), NoReadFrame(T)]),
    ("noread as a control byte", ScannerProtocolConfig(noread_tokens=(b"\x18",)), b"\x18\rNR\r",
     [NoReadFrame(T), frame("NR", None)]),
    ("empty lines", DEFAULT, b"\r\n\r\n\n\r\r\r", []),
    ("between frames", DEFAULT, b"\r\n]C0A\r\n\r\n]C0B\n\n", [frame("A"), frame("B")]),
    ("aim without data", DEFAULT, b"]C0\r", [noise("no data", b"]C0")]),
    ("blank", DEFAULT, b"  \t\r", [noise("control character 0x09", b"  \t")]),
    ("spaces", DEFAULT, b"   \r", [noise("no data", b"   ")]),
    ("nul noise", DEFAULT, b"\x00\x00\x00\r]C0A\r",
     [noise("control character 0x00", b"\x00\x00\x00"), frame("A")]),
    ("bad utf-8", DEFAULT, b"\xff\xfe]C0A\r", [noise("not utf-8", b"\xff\xfe]C0A")]),
    ("escape in data", DEFAULT, b"]C0A\x1b[0mB\r", [noise("control character 0x1b", b"]C0A\x1b[0mB")]),
    ("del", DEFAULT, b"]C0A\x7f\r", [noise("control character 0x7f", b"]C0A\x7f")]),
    ("latin-1", ScannerProtocolConfig(encoding="latin-1"), b"]A0ST\xc4DT\r", [frame("STÄDT", "]A0")]),
    ("carrier matched", CARRIERS, b"]C0JD014600006123456789\r]C100376123450000000016\r",
     [frame(JD, carrier="jd"), frame(SSCC, "]C1", carrier="sscc")]),
    ("carrier unmatched", CARRIERS, b"]C0SF1234\r", [frame("SF1234")]),
    ("carrier full match only", CARRIERS, b"]C0JD0146000061234567890\r", [frame(JD + "0")]),
    ("over-long", ScannerProtocolConfig(max_length=8), b"]C012345\r]C0123456789\r]C0AB\r",
     [frame("12345"), Discarded("overlong", "line longer than 8 bytes", b"]C0123456", T), frame("AB")]),
    ("over-long affixes count", ScannerProtocolConfig(max_length=6, prefix=b"<", suffix=b">"),
     b"<]C0AB>\r<]C0A>\r", [Discarded("overlong", "line longer than 6 bytes", b"<]C0AB>", T), frame("A")]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("config", "data", "expected"), [e[1:] for e in EXAMPLES], ids=[e[0] for e in EXAMPLES]
)
def test_examples_in_every_chunking(config: ScannerProtocolConfig, data: bytes, expected: list[Any]) -> None:
    all_chunkings(config, data, expected)


def test_all_default_examples_back_to_back() -> None:
    data = b"".join(e[2] for e in EXAMPLES if e[1] is DEFAULT)
    expected = [event for e in EXAMPLES if e[1] is DEFAULT for event in e[3]]
    all_chunkings(DEFAULT, data, expected)


def test_stats_count_what_was_reported() -> None:
    parser = ScannerParser(CARRIERS.model_copy(update={"max_length": 30}))
    parser.receive_data(
        b"]C0JD014600006123456789\r]C0SF1\rNOREAD\r\x00\r" + b"9" * 40 + b"\r]C1" + SSCC.encode() + b"\n", T
    )
    events = list(parser.events())
    assert [type(e).__name__ for e in events] == [
        "Frame",
        "Frame",
        "NoReadFrame",
        "Discarded",
        "Discarded",
        "Frame",
    ]
    s = parser.stats
    assert (s.frames, s.unmatched, s.noreads, s.noise, s.overlong, s.partial) == (3, 1, 1, 1, 1, 0)


def test_noise_sample_is_bounded() -> None:
    (event,) = feed(DEFAULT, [b"\x00" * 200 + b"\r"])
    assert isinstance(event, Discarded) and event.data == b"\x00" * SAMPLE


# --- over-long lines ------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 10_000])
def test_over_long_line_is_counted_once_and_the_buffer_stays_bounded(chunk: int) -> None:
    config = ScannerProtocolConfig(max_length=16)
    data = b"]C0" + b"X" * 1000 + b"\r\n]C0OK\r"
    parser = ScannerParser(config)
    for i in range(0, len(data), chunk):
        parser.receive_data(data[i : i + chunk], T)
        assert len(parser._partial) <= config.max_length
    events = list(parser.events())
    assert events == [Discarded("overlong", "line longer than 16 bytes", b"]C0" + b"X" * 14, T), frame("OK")]
    assert parser.stats.overlong == 1 and parser.stats.frames == 1


def test_line_of_exactly_max_length_is_a_frame() -> None:
    config = ScannerProtocolConfig(max_length=8)
    assert feed(config, [b"]C012345\r"]) == [frame("12345")]
    assert feed(config, [b"]C01234", b"5\r"]) == [frame("12345")]


def test_over_long_line_without_terminator_ends_with_the_silence() -> None:
    parser = ScannerParser(ScannerProtocolConfig(max_length=8, partial_timeout_s=0.2))
    parser.receive_data(b"X" * 20, 1.0)
    assert parser.deadline == pytest.approx(1.2)
    parser.tick(1.2)
    assert parser.deadline is None
    parser.receive_data(b"]C0AB\r", 2.0)  # not swallowed as the tail of the long line
    assert [type(e) for e in parser.events()] == [Discarded, Frame]
    assert parser.stats.partial == 0  # nothing was left to close


# --- partial frames and time ----------------------------------------------------------------------


def test_partial_frame_is_flushed_after_the_timeout_with_its_last_byte_time() -> None:
    parser = ScannerParser(ScannerProtocolConfig(partial_timeout_s=0.3))
    assert parser.deadline is None
    parser.receive_data(b"]C0JD0146", 10.0)
    parser.receive_data(b"00006123456789", 10.1)
    assert parser.deadline == pytest.approx(10.4)  # measured from the last byte, not the first
    parser.tick(10.39)
    assert parser.next_event() is NEED_DATA
    parser.tick(10.4)
    assert list(parser.events()) == [frame(JD, at=10.1, terminated=False)]
    assert parser.stats.partial == 1 and parser.stats.frames == 1
    assert parser.deadline is None
    parser.tick(99.0)
    assert parser.next_event() is NEED_DATA
    parser.receive_data(b"\r\n", 11.0)  # a late terminator is an empty line, not a frame
    assert parser.next_event() is NEED_DATA


def test_partial_frame_can_be_discarded_instead() -> None:
    parser = ScannerParser(ScannerProtocolConfig(partial_timeout_s=0.3, partial="discard"))
    parser.receive_data(b"]C0JD01", 1.0)
    parser.tick(5.0)
    assert list(parser.events()) == [Discarded("noise", "partial line timed out", b"]C0JD01", 1.0)]
    assert (parser.stats.partial, parser.stats.noise, parser.stats.frames) == (1, 1, 0)


def test_flushed_partial_goes_through_the_same_checks() -> None:
    parser = ScannerParser(ScannerProtocolConfig(prefix=b"\x02", partial_timeout_s=0.1))
    parser.receive_data(b"\x02NOREAD", 1.0)
    parser.tick(2.0)
    parser.receive_data(b"456789", 3.0)  # the tail of a frame whose start was lost
    parser.tick(4.0)
    assert list(parser.events()) == [
        NoReadFrame(1.0, terminated=False),
        Discarded("noise", "missing prefix", b"456789", 3.0),
    ]


def test_frames_carry_the_time_of_their_own_chunk() -> None:
    parser = ScannerParser()
    parser.receive_data(b"]C0A\r]C0B", 1.0)
    parser.receive_data(b"B\r]C0C\r", 2.0)  # events not pulled in between
    assert [(e.code, e.at) for e in parser.events() if isinstance(e, Frame)] == [
        ("A", 1.0),
        ("BB", 2.0),
        ("C", 2.0),
    ]


def test_empty_chunks_change_nothing() -> None:
    parser = ScannerParser(ScannerProtocolConfig(partial_timeout_s=1.0))
    parser.receive_data(b"]C0A", 1.0)
    parser.receive_data(b"", 5.0)  # not a byte: the partial timeout still runs from 1.0
    assert parser.deadline == 2.0


def test_reset_forgets_the_open_line_but_not_the_stats() -> None:
    parser = ScannerParser()
    parser.receive_data(b"]C0A\r\x00\r]C0HALF", 1.0)
    parser.reset()
    assert parser.deadline is None and parser.next_event() is NEED_DATA
    parser.receive_data(b"]C0B\r", 2.0)
    assert list(parser.events()) == [frame("B", at=2.0)]
    assert (parser.stats.frames, parser.stats.noise) == (2, 1)


# --- dedupe ---------------------------------------------------------------------------------------


def test_dedupe_within_the_window_measured_from_the_last_sighting() -> None:
    d = Deduper(1.0)
    assert not d.is_duplicate("A", 10.0)
    assert d.is_duplicate("A", 10.05)  # the double read
    assert not d.is_duplicate("B", 10.1)  # another code is not a duplicate
    assert d.is_duplicate("A", 10.9)
    assert d.is_duplicate("A", 11.8)  # still under the scanner: sliding window
    assert not d.is_duplicate("A", 12.8)  # gone for a whole window: a new read
    assert not d.is_duplicate("B", 11.1)  # exactly one window later
    assert d.duplicates == 3


def test_dedupe_window_zero_is_off() -> None:
    d = Deduper(0)
    assert not any(d.is_duplicate("A", 1.0) for _ in range(3))
    with pytest.raises(ValueError):
        Deduper(-1)


def test_dedupe_memory_is_bounded() -> None:
    d = Deduper(100.0, max_codes=50)
    for i in range(1000):
        assert not d.is_duplicate(str(i), float(i) / 1000)
        assert len(d._seen) <= 50
    assert d.is_duplicate("999", 1.0)
    d2 = Deduper(1.0)
    for i in range(1000):
        d2.is_duplicate(str(i), float(i))
    assert len(d2._seen) == 1  # expired codes are forgotten


# --- encoding and configuration -------------------------------------------------------------------


def test_encode_frame_matches_the_documented_bytes() -> None:
    assert encode_frame(JD) == b"]C0JD014600006123456789\r"
    assert encode_frame(SSCC, aim="]C1") == b"]C100376123450000000016\r"
    assert encode_frame("A", aim=None, prefix=b"\x02", suffix=b"\x03", terminator=b"\r\n") == b"\x02A\x03\r\n"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"code": ""},
        {"code": "A\rB"},
        {"code": "A\nB"},
        {"code": "A", "aim": "C0"},
        {"code": "A", "aim": "]C"},
        {"code": "A", "aim": "]0C"},
        {"code": "A", "terminator": b"\x03"},
        {"code": "A", "prefix": b"\r"},
        {"code": "运单", "encoding": "ascii"},
    ],
)
def test_encode_frame_refuses_what_no_scanner_sends(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ScannerProtocolError):
        encode_frame(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"prefix": b"\r"},
        {"suffix": b"\x03\n"},
        {"allowed_controls": "\n"},
        {"noread_tokens": (b"",)},
        {"noread_tokens": (b"NO\rREAD",)},
        {"encoding": "klingon"},
        {"carriers": {"bad": "("}},
        {"max_length": 0},
        {"partial_timeout_s": 0},
        {"aim": "sometimes"},
        {"terminator": b"\r"},  # not a field: terminators are not configured, all are accepted
    ],
)
def test_config_refuses_what_cannot_work(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ScannerProtocolConfig(**kwargs)


def test_config_round_trips_through_json() -> None:
    config = ScannerProtocolConfig(prefix=b"\x02", suffix=b"\x03", carriers={"jd": r"JD\d{18}"})
    again = ScannerProtocolConfig.model_validate_json(config.model_dump_json())
    assert again.prefix == b"\x02" and again.carriers["jd"].pattern == r"JD\d{18}"


def test_split_aim() -> None:
    assert split_aim("]C0ABC") == ("]C0", "ABC")
    assert split_aim("]C0") == ("]C0", "")
    assert split_aim("]d2X") == ("]d2", "X")
    assert split_aim("]C") == (None, "]C")
    assert split_aim("]_0X") == (None, "]_0X")
    assert split_aim("C0]X") == (None, "C0]X")


# --- properties -----------------------------------------------------------------------------------


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


configs = st.builds(
    ScannerProtocolConfig,
    prefix=st.sampled_from([b"", b"\x02", b"<<"]),
    suffix=st.sampled_from([b"", b"\x03", b">"]),
    aim=st.sampled_from(["optional", "required", "off"]),
    max_length=st.integers(1, 40),
    partial=st.sampled_from(["emit", "discard"]),
    carriers=st.sampled_from([{}, {"digits": r"\d+"}]),
)


@settings(max_examples=300)
@given(config=configs, data=st.data())
def test_arbitrary_bytes_never_raise(config: ScannerProtocolConfig, data: st.DataObject) -> None:
    pieces = st.sampled_from([b"\r", b"\n", b"]C0", b"\x02", b"\x03", b"NOREAD", b"\xff", b"A1"])
    stream = data.draw(st.binary(max_size=300) | st.lists(pieces, max_size=60).map(b"".join))
    parser = ScannerParser(config)
    now = 0.0
    events: list[ScannerEvent] = []
    try:
        for chunk in data.draw(chunked(stream)):
            now += data.draw(st.sampled_from([0.0, 0.1, 1.0]))
            parser.tick(now)
            parser.receive_data(chunk, now)
            assert len(parser._partial) <= config.max_length
            events.extend(parser.events())
        parser.tick(now + 10)
        events.extend(parser.events())
    except ScannerProtocolError:  # allowed by the h11 contract; the parser in fact never raises it
        return
    assert parser.deadline is None
    s = parser.stats
    assert sum(isinstance(e, Frame) for e in events) == s.frames
    assert sum(isinstance(e, NoReadFrame) for e in events) == s.noreads
    assert sum(isinstance(e, Discarded) and e.reason == "noise" for e in events) == s.noise
    assert sum(isinstance(e, Discarded) and e.reason == "overlong" for e in events) == s.overlong
    for event in events:
        if isinstance(event, Frame):
            assert event.code.strip() and "\r" not in event.code and "\n" not in event.code


codes = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("运单Ä\x1d"),
    min_size=1,
    max_size=40,
).filter(lambda c: c.strip() and c.encode() not in (b"NOREAD", b"NR"))
aims = st.sampled_from([None, *SYMBOLOGIES, "]X9"])


@settings(max_examples=300)
@given(
    scans=st.lists(st.tuples(codes, aims, st.sampled_from([b"\r", b"\n", b"\r\n"])), max_size=12),
    affixes=st.sampled_from([(b"", b""), (b"\x02", b"\x03"), (b"##", b"")]),
    data=st.data(),
)
def test_random_frames_round_trip(
    scans: list[tuple[str, str | None, bytes]], affixes: tuple[bytes, bytes], data: st.DataObject
) -> None:
    prefix, suffix = affixes
    scans = [(code, aim, t) for code, aim, t in scans if aim is not None or split_aim(code)[0] is None]
    stream = b"".join(encode_frame(c, aim=a, prefix=prefix, suffix=suffix, terminator=t) for c, a, t in scans)
    config = ScannerProtocolConfig(prefix=prefix, suffix=suffix)
    events = feed(config, data.draw(chunked(stream)))
    assert events == [frame(code, aim) for code, aim, _ in scans]
