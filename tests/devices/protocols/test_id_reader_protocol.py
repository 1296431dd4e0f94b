"""The e-plate / IC-card reader parser, tested the h11 way: every example whole, split at every byte,
one byte at a time and with trailing data; any split of any stream gives the same events; fuzzed
bytes never raise; random ids round-trip. Time is an argument: nothing here sleeps."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from devices.protocols.id_reader import (
    IdFrame,
    IdReaderEvent,
    IdReaderParser,
    IdReaderProtocolConfig,
    IdReaderProtocolError,
    encode_read,
    lrc,
)
from devices.protocols.need_data import NEED_DATA
from devices.protocols.scanner import SAMPLE, Discarded

T = 100.0
EPC = "E2801160600002046F3B2F41"  # a 96-bit EPC, as an e-plate reader sends it
UID = "3A5F0C21"  # a MIFARE Classic UID


def read(id_: str, at: float = T) -> IdFrame:
    return IdFrame(id_, at)


def noise(detail: str, data: bytes) -> Discarded:
    return Discarded("noise", detail, data[:SAMPLE], T)


def feed(
    config: IdReaderProtocolConfig, chunks: Iterable[bytes], now: float = T, *, tick: bool = False
) -> list[IdReaderEvent]:
    parser = IdReaderParser(config)
    events: list[IdReaderEvent] = []
    for chunk in chunks:
        parser.receive_data(chunk, now)
        while (event := parser.next_event()) is not NEED_DATA:
            events.append(event)
    if tick:
        parser.tick(now + 3600)
        events.extend(parser.events())
    return events


def all_chunkings(config: IdReaderProtocolConfig, data: bytes, expected: list[Any]) -> None:
    """Whole, split at every byte, one byte at a time, with trailing data: the same events."""
    assert feed(config, [data]) == expected
    for i in range(len(data) + 1):
        assert feed(config, [data[:i], data[i:]]) == expected, i
    assert feed(config, [data[i : i + 1] for i in range(len(data))]) == expected
    # the start of a next read changes nothing until its own end
    assert feed(config, [data + b"E2801"]) == expected
    assert feed(config, [data, b"\x02E2"]) == expected


LINE = IdReaderProtocolConfig()
CR = IdReaderProtocolConfig(terminator="cr")
LF = IdReaderProtocolConfig(terminator="lf")
CRLF = IdReaderProtocolConfig(terminator="crlf")
FRAMED = IdReaderProtocolConfig(framing="stx-etx")
FRAMED_LRC = IdReaderProtocolConfig(framing="stx-etx", lrc=True)
EPC96 = IdReaderProtocolConfig(lengths=(24,))
CARD_NO = IdReaderProtocolConfig(charset="decimal", lengths=(10,))
SPACED = IdReaderProtocolConfig(separators=" ", max_length=24)
SHORT = IdReaderProtocolConfig(max_length=8, max_line=10)


def framed(id_: str, check: bool = False) -> bytes:
    return encode_read(id_, framing="stx-etx", terminator=b"", with_lrc=check)


EXAMPLES: list[tuple[str, IdReaderProtocolConfig, bytes, list[Any]]] = [
    ("epc CR LF", LINE, EPC.encode() + b"\r\n", [read(EPC)]),
    ("epc CR", LINE, EPC.encode() + b"\r", [read(EPC)]),
    ("epc LF", LINE, EPC.encode() + b"\n", [read(EPC)]),
    ("lower case hex is upper-cased", LINE, b"3a5f0c21\r", [read(UID)]),
    ("padded", LINE, b"  3A5F0C21 \r\n", [read(UID)]),
    ("blank lines", LINE, b"\r\n\r\n\n\r", []),
    ("two reads", LINE, b"3A5F0C21\r\n" + EPC.encode() + b"\r\n", [read(UID), read(EPC)]),
    ("strict CR", CR, b"3A5F0C21\r3A5F0C22\r", [read(UID), read("3A5F0C22")]),
    ("CR LF on a CR line", CR, b"3A5F0C21\r\n3A5F0C22\r\n",
     [read(UID), noise("control character 0x0a", b"\n3A5F0C22")]),
    ("strict LF", LF, b"3A5F0C21\n", [read(UID)]),
    ("CR LF on an LF line", LF, b"3A5F0C21\r\n", [noise("control character 0x0d", b"3A5F0C21\r")]),
    ("strict CR LF", CRLF, b"3A5F0C21\r\n3A5F0C22\r\n", [read(UID), read("3A5F0C22")]),
    ("lone CR on a CR LF line", CRLF, b"3A5F\r0C21\r\n", [noise("control character 0x0d", b"3A5F\r0C21")]),
    ("CR CR LF", CRLF, b"3A5F0C21\r\r\n", [noise("control character 0x0d", b"3A5F0C21\r")]),
    ("not hex", LINE, b"3A5F0G21\r", [noise("'G' is not hex", b"3A5F0G21")]),
    ("too short", LINE, b"3A5\r", [noise("3 characters, not 4–32", b"3A5")]),
    ("too long an id", LINE, b"A" * 33 + b"\r", [noise("33 characters, not 4–32", b"A" * 33)]),
    ("exact length", EPC96, b"3A5F0C21\r" + EPC.encode() + b"\r",
     [noise("8 characters, not 24", b"3A5F0C21"), read(EPC)]),
    ("decimal card number keeps its zeros", CARD_NO, b"0012345678\r\n", [read("0012345678")]),
    ("hex on a decimal reader", CARD_NO, b"00123456AB\r\n", [noise("'A' is not decimal", b"00123456AB")]),
    ("separators dropped", SPACED, b"E2 80 11 60 60 00\r\n", [read("E28011606000")]),
    ("control noise", LINE, b"\x00\x1b[0m\r3A5F0C21\r", [noise("control character 0x00", b"\x00\x1b[0m"),
                                                          read(UID)]),
    ("non-ascii", LINE, b"3A5F\xff0C21\r", [noise("non-ASCII byte 0xff", b"3A5F\xff0C21")]),
    ("utf-8", LINE, "卡3A5F\r".encode(), [noise("non-ASCII byte 0xe5", "卡3A5F".encode())]),
    ("spaces only", LINE, b"   \r", [noise("no data", b"   ")]),
    ("over-long line", SHORT, b"3A5F0C21\r" + b"9" * 15 + b"\r3A5F0C22\r",
     [read(UID), Discarded("overlong", "longer than 10 bytes", b"9" * 11, T), read("3A5F0C22")]),
    ("over-long CR LF line", SHORT.model_copy(update={"terminator": "crlf"}),
     b"9" * 10 + b"\r\r\n3A5F0C22\r\n",
     [Discarded("overlong", "longer than 10 bytes", b"9" * 10 + b"\r", T), read("3A5F0C22")]),
    ("framed", FRAMED, framed(UID), [read(UID)]),
    ("framed, CR LF after", FRAMED, framed(UID) + b"\r\n" + framed(EPC) + b"\r\n", [read(UID), read(EPC)]),
    ("framed with a check byte", FRAMED_LRC, framed(UID, True) + framed(EPC, True), [read(UID), read(EPC)]),
    ("bad check byte", FRAMED_LRC, framed(UID) + b"\x7f" + framed(EPC, True),
     [noise(f"bad check byte 0x7f (expected {lrc(framed(UID)):#04x})", framed(UID) + b"\x7f"), read(EPC)]),
    ("garbage between frames", FRAMED, b"xx\r\n" + framed(UID) + b"z \xffz" + framed(EPC),
     [noise("garbage between frames", b"xx"), read(UID), noise("garbage between frames", b"z\xffz"),
      read(EPC)]),
    ("frame cut short", FRAMED, b"\x02" + b"3A5F" + framed(UID),
     [noise("frame cut short by the next STX", b"\x023A5F"), read(UID)]),
    ("empty frame", FRAMED, b"\x02\x03", [noise("no data", b"\x02\x03")]),
    ("over-long frame", IdReaderProtocolConfig(framing="stx-etx", lrc=True, max_length=8, max_line=10),
     b"\x02" + b"9" * 12 + b"\x03\x02" + framed(UID, True),  # its check byte happens to be an STX
     [Discarded("overlong", "longer than 10 bytes", b"\x02" + b"9" * 11, T), read(UID)]),
    ("framed reader on a line config", LINE, framed(UID) + b"\r",
     [noise("control character 0x02", framed(UID))]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("config", "data", "expected"), [e[1:] for e in EXAMPLES], ids=[e[0] for e in EXAMPLES]
)
def test_examples_in_every_chunking(config: IdReaderProtocolConfig, data: bytes, expected: list[Any]) -> None:
    all_chunkings(config, data, expected)


def test_stats_count_what_was_reported() -> None:
    parser = IdReaderParser(FRAMED_LRC.model_copy(update={"max_line": 30}))
    parser.receive_data(
        framed(UID, True) + b"junk" + framed(EPC) + b"\x00" + b"\x02" + b"9" * 40 + b"\x03!" + b"\x02AB", T
    )
    parser.tick(T + 10)
    kinds = [(type(e).__name__, getattr(e, "reason", None)) for e in parser.events()]
    assert kinds == [
        ("IdFrame", None),
        ("Discarded", "noise"),  # junk
        ("Discarded", "noise"),  # bad check byte
        ("Discarded", "overlong"),
        ("Discarded", "noise"),  # the unterminated frame, at the tick
    ]
    s = parser.stats
    assert (s.reads, s.noise, s.overlong, s.partial, s.bad_lrc) == (1, 3, 1, 1, 1)


# --- time -----------------------------------------------------------------------------------------


def test_a_partial_line_is_never_an_id() -> None:
    parser = IdReaderParser(LINE)
    assert parser.deadline is None
    parser.receive_data(b"3A5F0C", 10.0)
    assert parser.deadline == 10.5 and list(parser.events()) == []
    parser.tick(10.49)
    assert list(parser.events()) == []
    parser.tick(10.5)
    assert list(parser.events()) == [Discarded("noise", "unterminated line timed out", b"3A5F0C", 10.0)]
    assert parser.deadline is None and parser.stats.partial == 1
    parser.receive_data(b"3A5F0C21\r", 11.0)
    assert list(parser.events()) == [IdFrame(UID, 11.0)]  # the next line starts clean


def test_half_a_cr_lf_is_not_data_when_the_line_goes_quiet() -> None:
    parser = IdReaderParser(CRLF)
    parser.receive_data(b"\r", 1.0)
    assert parser.deadline == 1.5
    parser.tick(2.0)
    assert list(parser.events()) == [] and parser.stats.partial == 0


def test_an_open_frame_and_garbage_are_closed_by_silence() -> None:
    parser = IdReaderParser(FRAMED)
    parser.receive_data(b"zz\x023A5F", 5.0)
    parser.tick(6.0)
    assert list(parser.events()) == [
        Discarded("noise", "garbage between frames", b"zz", 5.0),
        Discarded("noise", "unterminated frame timed out", b"\x023A5F", 5.0),
    ]
    parser.receive_data(b"3A5F0C21\x03", 7.0)  # the rest of a frame whose STX went before
    parser.tick(8.0)
    assert [e.detail for e in parser.events() if isinstance(e, Discarded)] == ["garbage between frames"]


def test_ids_are_stamped_with_the_chunk_holding_their_last_byte() -> None:
    parser = IdReaderParser(LINE)
    parser.receive_data(b"3A5F", 1.0)
    parser.receive_data(b"0C21\r\n3A", 2.0)
    parser.receive_data(b"5F0C22\n", 3.0)
    assert list(parser.events()) == [IdFrame(UID, 2.0), IdFrame("3A5F0C22", 3.0)]


@pytest.mark.parametrize(
    ("config", "cut", "rest", "expected"),
    [
        (LINE, b"", b"0C21\r\n3A5F0C22\r\n", ["3A5F0C22"]),  # the tail of a cut line is dropped
        (LINE, b"", b"\r\n3A5F0C22\r\n", ["3A5F0C22"]),  # a cut that ended right before the end
        (FRAMED, b"", b"0C21\x03\r\n" + framed("3A5F0C22"), ["3A5F0C22"]),
        (FRAMED, b"", framed("3A5F0C22"), ["3A5F0C22"]),  # a new STX begins a frame at once
        (FRAMED_LRC, b"", b"21\x03\x02" + framed("3A5F0C22", True), ["3A5F0C22"]),  # check byte = STX
    ],
)
def test_skip_to_terminator_drops_the_rest_of_a_read_cut_by_the_open(
    config: IdReaderProtocolConfig, cut: bytes, rest: bytes, expected: list[str]
) -> None:
    parser = IdReaderParser(config)
    parser.skip_to_terminator(1.0)
    parser.receive_data(cut + rest, 1.0)
    events = list(parser.events())
    assert [e.id for e in events if isinstance(e, IdFrame)] == expected
    assert [e for e in events if isinstance(e, Discarded)] == []


def test_reset_forgets_an_open_read_and_keeps_the_counts() -> None:
    parser = IdReaderParser(LINE)
    parser.receive_data(b"3A5F0C21\r3A5F", 1.0)
    parser.reset()
    parser.receive_data(b"0C22\r", 2.0)
    assert list(parser.events()) == [IdFrame("0C22", 2.0)]
    assert parser.stats.reads == 2


# --- properties -----------------------------------------------------------------------------------

_configs = st.builds(
    IdReaderProtocolConfig,
    framing=st.sampled_from(["line", "stx-etx"]),
    terminator=st.sampled_from(["any", "cr", "lf", "crlf"]),
    lrc=st.booleans(),
    charset=st.sampled_from(["hex", "decimal", "alnum"]),
    min_length=st.integers(1, 8),
    max_length=st.integers(8, 24),
    max_line=st.integers(24, 40),
    separators=st.sampled_from(["", " ", ":"]),
)
_ALPHABET = {"hex": "0123456789ABCDEF", "decimal": "0123456789", "alnum": "0123456789ABCDEFXYZabcxyz"}
_TERMINATORS = {"any": [b"\r", b"\n", b"\r\n"], "cr": [b"\r"], "lf": [b"\n"], "crlf": [b"\r\n"]}


@st.composite
def streams(draw: st.DrawFn) -> tuple[IdReaderProtocolConfig, bytes]:
    """A config and what a reader so configured might send: reads, noise, cut reads, blank lines."""
    config = draw(_configs)
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["id", "id", "noise", "cut", "blank"]))
        if kind in ("id", "cut"):
            id_ = draw(st.text(_ALPHABET[config.charset], min_size=1, max_size=30))
            terminator = draw(st.sampled_from(_TERMINATORS[config.terminator]))
            if config.framing == "line":
                data = encode_read(id_, terminator=terminator)
            else:
                data = encode_read(id_, framing="stx-etx", terminator=b"\r\n"[: draw(st.integers(0, 2))],
                                   with_lrc=config.lrc)  # fmt: skip
            parts.append(data[: draw(st.integers(0, len(data)))] if kind == "cut" else data)
        elif kind == "noise":
            parts.append(draw(st.binary(max_size=50)))
        else:
            parts.append(draw(st.sampled_from([b"\r\n", b"\n", b"\r", b" "])))
    return config, b"".join(parts)


@settings(max_examples=400, deadline=None)
@given(streams(), st.lists(st.integers(0, 400), max_size=12))
def test_any_split_gives_the_same_events(
    stream: tuple[IdReaderProtocolConfig, bytes], cuts: list[int]
) -> None:
    config, data = stream
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    whole = feed(config, [data], tick=True)
    assert feed(config, chunks, tick=True) == whole
    assert feed(config, [data[i : i + 1] for i in range(len(data))], tick=True) == whole
    # each chunk with its own time: the same events, each stamped with a time no earlier than before
    parser = IdReaderParser(config)
    stamped: list[IdReaderEvent] = []
    for i, chunk in enumerate(chunks):
        parser.receive_data(chunk, float(i))
        stamped.extend(parser.events())
    parser.tick(1e9)
    stamped.extend(parser.events())
    assert [dataclasses.replace(e, at=T) for e in stamped] == whole
    assert [e.at for e in stamped] == sorted(e.at for e in stamped)
    stats = parser.stats
    assert stats.reads == sum(isinstance(e, IdFrame) for e in whole)
    assert stats.noise + stats.overlong == sum(isinstance(e, Discarded) for e in whole)


@settings(max_examples=400, deadline=None)
@given(_configs, st.lists(st.binary(max_size=64), max_size=8), st.floats(0, 10))
def test_arbitrary_bytes_never_raise(
    config: IdReaderProtocolConfig, chunks: list[bytes], quiet: float
) -> None:
    parser = IdReaderParser(config)
    for i, chunk in enumerate(chunks):
        parser.receive_data(chunk, float(i))
        parser.tick(i + quiet)
        for event in parser.events():
            assert isinstance(event, IdFrame | Discarded)
            if isinstance(event, IdFrame):
                assert config.min_length <= len(event.id) <= config.max_length
                assert set(event.id) <= set(_ALPHABET[config.charset] + "abcdefghijklmnopqrstuvwxyz")
            else:
                assert len(event.data) <= SAMPLE


@settings(max_examples=300, deadline=None)
@given(_configs, st.data())
def test_every_valid_id_round_trips(config: IdReaderProtocolConfig, data: st.DataObject) -> None:
    ids = data.draw(
        st.lists(
            st.text(_ALPHABET[config.charset], min_size=config.min_length, max_size=config.max_length),
            max_size=5,
        )
    )
    if config.framing == "line":
        terminator = data.draw(st.sampled_from(_TERMINATORS[config.terminator]))
        wire = b"".join(encode_read(i, terminator=terminator) for i in ids)
    else:
        wire = b"".join(encode_read(i, framing="stx-etx", terminator=b"", with_lrc=config.lrc) for i in ids)
    expected = [read(i.upper() if config.charset == "hex" else i) for i in ids]
    assert feed(config, [wire]) == expected


# --- configuration and encoding -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"min_length": 10, "max_length": 8}, "min_length 10 > max_length 8"),
        ({"lengths": (40,)}, "within min_length..max_length"),
        ({"max_line": 10}, "max_line 10 < max_length 32"),
        ({"separators": "A"}, "may not be a hex character"),
        ({"separators": "\t"}, "printable ASCII"),
        ({"framing": "xml"}, "framing"),
        ({"terminator": "etx"}, "terminator"),
        ({"stray": 1}, "stray"),
    ],
)
def test_bad_configurations_are_refused_with_the_reason(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        IdReaderProtocolConfig(**fields)


def test_the_check_byte_makes_the_frame_xor_to_zero() -> None:
    frame = encode_read(UID, framing="stx-etx", terminator=b"", with_lrc=True)
    assert frame[:-1] == b"\x02" + UID.encode() + b"\x03"
    assert lrc(frame) == 0


@pytest.mark.parametrize(
    ("id_", "kw"),
    [
        ("", {}),
        ("卡", {}),
        ("A\rB", {}),
        ("3A5F", {"terminator": b"\x03"}),
        ("3A5F", {"framing": "stx-etx", "terminator": b"!"}),
    ],
)
def test_encoding_what_no_reader_sends_raises(id_: str, kw: dict[str, Any]) -> None:
    with pytest.raises(IdReaderProtocolError):
        encode_read(id_, **kw)
