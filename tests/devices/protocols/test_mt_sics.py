"""MT-SICS parser, encoders and client, tested the h11 way: every input whole, split at every byte,
one byte at a time and with trailing data; fuzzed garbage; exact round trips."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.protocols import parity
from devices.protocols.mt_sics import (
    KG_PER_UNIT,
    MAX_LINE,
    MAX_UNIT,
    OTHER_UNITS,
    Busy,
    Command,
    InStep,
    Late,
    LogicalErrorReply,
    MtSicsClient,
    MtSicsParser,
    MtSicsProtocolError,
    Overload,
    ParserEvent,
    Reply,
    ResetReply,
    SyntaxErrorReply,
    TareReply,
    TransmissionErrorReply,
    Underload,
    Unparsed,
    Unsolicited,
    UnsupportedUnit,
    WeightReply,
    ZeroReply,
    encode,
    encode_reply,
    parse_line,
)
from devices.protocols.need_data import NEED_DATA

# Every example reply in PROTOCOLS.md, written out by hand (independent of encode_reply).
EXAMPLES: list[tuple[bytes, ParserEvent]] = [
    (b"S S     100.00 g\r\n", WeightReply("S", "S", Decimal("100.00"), "g")),
    (b"S I\r\n", Busy()),
    (b"S +\r\n", Overload()),
    (b"S -\r\n", Underload()),
    (b"S S      12.345 kg\r\n", WeightReply("S", "S", Decimal("12.345"), "kg")),
    (b"S D     100.02 g\r\n", WeightReply("S", "D", Decimal("100.02"), "g")),
    (b"Z A\r\n", ZeroReply("Z", "A")),
    (b"Z I\r\n", ZeroReply("Z", "I")),
    (b"Z +\r\n", ZeroReply("Z", "+")),
    (b"Z -\r\n", ZeroReply("Z", "-")),
    (b"ZI S\r\n", ZeroReply("ZI", "S")),
    (b"ZI D\r\n", ZeroReply("ZI", "D")),
    (b"T S      50.00 g\r\n", TareReply("T", "S", Decimal("50.00"), "g")),
    (b"TA A      50.00 g\r\n", TareReply("TA", "A", Decimal("50.00"), "g")),
    (b"TAC A\r\n", TareReply("TAC", "A")),
    (b'I4 A "0123456789"\r\n', ResetReply("0123456789")),
    (b"ES\r\n", SyntaxErrorReply()),
    (b"ET\r\n", TransmissionErrorReply()),
    (b"EL\r\n", LogicalErrorReply()),
]
STREAM = b"".join(data for data, _ in EXAMPLES)
EXPECTED = [event for _, event in EXAMPLES]


def drain(parser: MtSicsParser) -> list[ParserEvent]:
    events = []
    while (event := parser.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def feed(chunks: Iterable[bytes]) -> list[ParserEvent]:
    parser = MtSicsParser()
    events: list[ParserEvent] = []
    for chunk in chunks:
        parser.receive_data(chunk)
        events += drain(parser)
    return events


def one_byte_at_a_time(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# --- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "expected"), EXAMPLES, ids=[d.decode().strip() for d, _ in EXAMPLES])
def test_each_documented_reply(data: bytes, expected: ParserEvent) -> None:
    assert feed([data]) == [expected]


def test_whole_stream() -> None:
    assert feed([STREAM]) == EXPECTED


def test_split_at_every_byte() -> None:
    for i in range(len(STREAM) + 1):
        assert feed([STREAM[:i], STREAM[i:]]) == EXPECTED, i


def test_one_byte_at_a_time() -> None:
    assert feed(one_byte_at_a_time(STREAM)) == EXPECTED


def test_trailing_partial_line_waits_for_its_terminator() -> None:
    parser = MtSicsParser()
    parser.receive_data(b"S S     100.00 g\r\nS D   1")
    assert drain(parser) == [WeightReply("S", "S", Decimal("100.00"), "g")]
    parser.receive_data(b".5 kg\r")
    assert parser.next_event() is NEED_DATA
    parser.receive_data(b"\n")
    assert drain(parser) == [WeightReply("S", "D", Decimal("1.5"), "kg")]


@pytest.mark.parametrize(
    ("line", "value", "unit"),
    [
        (b"S S 100.00 g", "100.00", "g"),  # no padding at all
        (b"S\tS\t  100.00\tg", "100.00", "g"),  # tabs
        (b"  S   S        12.345   kg  ", "12.345", "kg"),  # extra blanks everywhere
        (b"S S    -  1.5 lb", "-1.5", "lb"),  # sign apart from the digits, column-aligned
        (b"S S     -1.5 lb", "-1.5", "lb"),  # sign glued on
        (b"S S        .5 oz", ".5", "oz"),
        (b"S S          7 kg", "7", "kg"),
    ],
)
def test_parsed_by_whitespace_not_columns(line: bytes, value: str, unit: str) -> None:
    assert parse_line(line) == WeightReply("S", "S", Decimal(value), unit)


@pytest.mark.parametrize(
    ("line", "kg"),
    [
        (b"S S     100.00 g", "0.1"),
        (b"S S      12.345 kg", "12.345"),
        (b"S S       1.00 lb", "0.45359237"),
        (b"S S      16 oz", "0.45359237"),
        (b"S S     2.2046 lb", "0.999989738902"),  # exact, not 1.0 and not a float
        (b"S S     500 mg", "0.0005"),
    ],
)
def test_units_convert_to_kg_exactly(line: bytes, kg: str) -> None:
    reply = parse_line(line)
    assert isinstance(reply, WeightReply)
    assert reply.kg == Decimal(kg)
    assert isinstance(reply.kg, Decimal)


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"S S     11.023 ct", UnsupportedUnit("S", "S", Decimal("11.023"), "ct")),
        (b"S D         12 PCS", UnsupportedUnit("S", "D", Decimal(12), "PCS")),
        (b"S S      -  2.5 %", UnsupportedUnit("S", "S", Decimal("-2.5"), "%")),
        (b"T S      5.000 ozt", UnsupportedUnit("T", "S", Decimal("5.000"), "ozt")),
        (b"TA A     -1.5 N", UnsupportedUnit("TA", "A", Decimal("-1.5"), "N")),
        # units this code has never heard of (outside finding): still the balance's answer
        (b"S S      5.000 t", UnsupportedUnit("S", "S", Decimal("5.000"), "t")),
        (b"S S      5.000 lbs", UnsupportedUnit("S", "S", Decimal("5.000"), "lbs")),
        (b"S S      5.000 Kg", UnsupportedUnit("S", "S", Decimal("5.000"), "Kg")),
        (b"S S      5.000 kg,", UnsupportedUnit("S", "S", Decimal("5.000"), "kg,")),
        (b"S D     12.3 stone", UnsupportedUnit("S", "D", Decimal("12.3"), "stone")),
    ],
)
def test_units_a_balance_shows_but_not_in_kg_are_named(line: bytes, reply: UnsupportedUnit) -> None:
    """Not Unparsed (which reads as noise, and then as a silent balance): the answer, in a unit
    with no kg value here — a unit of the manual's list, or any other unit token."""
    assert parse_line(line) == reply
    client = MtSicsClient()
    client.send(Command.SI if reply.command == "S" else Command(reply.command))
    assert client_events(client, line + b"\r\n") == [
        replace(reply, command="SI") if reply.command == "S" else reply
    ]


_UNKNOWN_UNITS = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=MAX_UNIT
).filter(lambda u: u not in KG_PER_UNIT)


@given(
    st.sampled_from(["S", "D"]),
    st.decimals(min_value=-99999, max_value=99999, places=3, allow_nan=False, allow_infinity=False),
    _UNKNOWN_UNITS,
)
def test_any_unknown_unit_is_an_unsupported_unit_whole_and_split_anywhere(
    status: str, value: Decimal, unit: str
) -> None:
    """A well-formed weight line in any unit token not converted here is UnsupportedUnit (its token
    kept as sent), whole, split at every byte, one byte at a time — never Unparsed."""
    line = f"S {status} {format(value, 'f'):>10} {unit}\r\n".encode()
    expected = [UnsupportedUnit("S", status, value, unit)]
    assert feed([line]) == expected
    assert feed(one_byte_at_a_time(line)) == expected
    for i in range(len(line) + 1):
        assert feed([line[:i], line[i:]]) == expected


def test_bare_lf_and_blank_lines() -> None:
    assert feed([b"\r\n\n   \r\nS S 1 kg\nZ A\r\n"]) == [
        WeightReply("S", "S", Decimal(1), "kg"),
        ZeroReply("Z", "A"),
    ]


@pytest.mark.parametrize(
    "line",
    [
        b"hello",
        b"S S",  # a stable weight without the weight
        b"S S 12.3",  # without a unit
        b"S S 12.3 kg g",  # two units
        b"S S 12.3 " + b"k" * 17,  # a unit token longer than any unit
        b"S S 12.3 kg\x00",  # a control character is not part of a unit
        b"S S 1.2.3 kg",
        b"S S 1e3 kg",  # no exponents on the wire
        b"S X 1 kg",
        b"S I extra",
        b"Z Q",
        b"ZI A",  # ZI answers S or D, not A
        b"T A 1 kg",
        b"TAC A 1 kg",
        b"T S",
        b"I4 A",
        b'I4 A "',
        b"S S \xb51 g",  # not ASCII
        b"S S " + b"9" * 30 + b" g",  # too many digits to be a balance's weight
    ],
)
def test_garbage_lines_are_unparsed_and_counted(line: bytes) -> None:
    parser = MtSicsParser()
    parser.receive_data(line + b"\r\nS I\r\n")
    assert drain(parser) == [Unparsed(line), Busy()]
    assert parser.unparsed == 1


def test_over_long_line_reported_once_whatever_the_chunking() -> None:
    data = b"S S " + b"x" * (3 * MAX_LINE) + b"\r\nS +\r\n"
    expected = [Unparsed(data[:MAX_LINE]), Overload()]
    assert feed([data]) == expected
    assert feed(one_byte_at_a_time(data)) == expected
    for i in range(0, len(data), 37):
        assert feed([data[:i], data[i:]]) == expected


def test_resynchronises_after_noise() -> None:
    noise = b"\x00\xff\x13garbage\x1b[2J"
    assert feed([noise + b"\r\n" + STREAM]) == [Unparsed(noise), *EXPECTED]


# --- hypothesis: garbage never escapes, round trips are exact -------------------------------------


@given(st.lists(st.binary(max_size=80), max_size=20))
def test_any_bytes_in_any_chunks_never_raise(chunks: list[bytes]) -> None:
    events = feed(chunks)
    assert events == feed([b"".join(chunks)])  # chunking never changes the result
    assert all(isinstance(e, Reply | Unparsed) for e in events)


DECIMALS = st.integers(min_value=0, max_value=6)


@st.composite
def weights(draw: st.DrawFn) -> tuple[Decimal, str]:
    places = draw(DECIMALS)
    units = draw(st.sampled_from(sorted(KG_PER_UNIT)))
    value = draw(
        st.decimals(min_value=-99999, max_value=99999, places=places, allow_nan=False, allow_infinity=False)
    )
    return value, units


@given(weights(), st.sampled_from(["S", "D"]))
def test_weight_round_trip_exact(weight: tuple[Decimal, str], status: str) -> None:
    value, unit = weight
    reply = WeightReply("S", status, value, unit)  # type: ignore[arg-type]
    (parsed,) = feed([encode_reply(reply)])
    assert parsed == reply
    assert isinstance(parsed, WeightReply)
    assert parsed.value.as_tuple().exponent == value.as_tuple().exponent  # resolution kept
    assert parsed.kg == value * KG_PER_UNIT[unit]  # exact (Decimal context is wide enough here)


_SERIALS = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='"'),
    min_size=1,
    max_size=20,
)
REPLIES: st.SearchStrategy[Reply] = st.one_of(
    st.builds(lambda w, s: WeightReply("S", s, *w), weights(), st.sampled_from(["S", "D"])),
    st.sampled_from([Busy(), Overload(), Underload(), SyntaxErrorReply(), TransmissionErrorReply()]),
    st.sampled_from([LogicalErrorReply(), LogicalErrorReply("S"), LogicalErrorReply("TA")]),
    st.builds(ZeroReply, st.just("Z"), st.sampled_from(["A", "I", "+", "-"])),
    st.builds(ZeroReply, st.just("ZI"), st.sampled_from(["S", "D", "I", "+", "-"])),
    st.builds(lambda w: TareReply("T", "S", *w), weights()),
    st.builds(lambda w: TareReply("TA", "A", *w), weights()),
    st.builds(TareReply, st.sampled_from(["T", "TA", "TAC"]), st.sampled_from(["I", "+", "-"])),
    st.just(TareReply("TAC", "A")),
    st.builds(ResetReply, _SERIALS),
    st.builds(
        UnsupportedUnit,
        st.sampled_from(["S", "T", "TA"]),
        st.sampled_from(["S", "D"]),
        st.decimals(min_value=-9999, max_value=9999, places=3, allow_nan=False, allow_infinity=False),
        st.sampled_from(sorted(OTHER_UNITS)),
    ).filter(lambda r: r.command == "S" or r.status == {"T": "S", "TA": "A"}.get(r.command)),
)


@given(st.lists(REPLIES, max_size=10), st.data())
def test_any_replies_round_trip_in_any_chunks(replies: list[Reply], data: st.DataObject) -> None:
    stream = b"".join(encode_reply(r) for r in replies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert feed(chunks) == replies


@given(st.lists(st.one_of(REPLIES, st.binary(max_size=30).filter(lambda b: b"\n" not in b)), max_size=12))
def test_replies_survive_garbage_lines_between_them(items: list[Reply | bytes]) -> None:
    stream = b"".join(encode_reply(i) if not isinstance(i, bytes) else i + b"\r\n" for i in items)
    expected = [i for i in items if not isinstance(i, bytes)]
    got = [e for e in feed([stream]) if not isinstance(e, Unparsed)]
    # a garbage line can itself be a valid reply ("ES"); what was sent as a reply always arrives, in order
    it = iter(got)
    assert all(any(g == e for g in it) for e in expected)


# --- encoding -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "wire"),
    [
        ("S", b"S\r\n"),
        ("SI", b"SI\r\n"),
        ("SIR", b"SIR\r\n"),
        ("Z", b"Z\r\n"),
        ("ZI", b"ZI\r\n"),
        ("T", b"T\r\n"),
        ("TA", b"TA\r\n"),
        ("TAC", b"TAC\r\n"),
        ("@", b"@\r\n"),
    ],
)
def test_commands(command: str, wire: bytes) -> None:
    assert encode(command) == wire
    assert encode(Command(command)) == wire


def test_tare_preset_and_bad_commands() -> None:
    assert encode(Command.TA, (Decimal("50.00"), "g")) == b"TA 50.00 g\r\n"
    with pytest.raises(MtSicsProtocolError):
        encode("W")
    with pytest.raises(MtSicsProtocolError):
        encode(Command.S, (Decimal(1), "kg"))
    with pytest.raises(MtSicsProtocolError):
        encode(Command.TA, (Decimal(1), "stone"))
    with pytest.raises(MtSicsProtocolError):
        encode(Command.TA, (Decimal("NaN"), "kg"))


def test_reply_encoding_matches_the_documented_columns() -> None:
    assert encode_reply(WeightReply("S", "S", Decimal("100.00"), "g")) == b"S S     100.00 g\r\n"
    # the value is right-aligned in 10 characters (PROTOCOLS' SI example pads one more: whitespace
    # parsing takes both, see EXAMPLES)
    assert encode_reply(WeightReply("S", "D", Decimal("-12.345"), "kg")) == b"S D    -12.345 kg\r\n"
    assert encode_reply(TareReply("T", "S", Decimal("50.00"), "g")) == b"T S      50.00 g\r\n"
    assert encode_reply(ResetReply("0123456789")) == b'I4 A "0123456789"\r\n'


# --- the client: no pipelining, replies matched to their command ---------------------------------


def client_events(client: MtSicsClient, data: bytes) -> list[object]:
    client.receive_data(data)
    events = []
    while (event := client.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def test_client_refuses_a_second_command_while_one_is_outstanding() -> None:
    client = MtSicsClient()
    assert client.send(Command.SI) == b"SI\r\n"
    with pytest.raises(MtSicsProtocolError, match="pipelining"):
        client.send(Command.Z)
    assert client_events(client, b"S D      1.5 kg\r\n") == [WeightReply("SI", "D", Decimal("1.5"), "kg")]
    assert client.outstanding is None
    assert client.send(Command.Z) == b"Z\r\n"


def test_client_names_the_command_that_asked() -> None:
    client = MtSicsClient()
    client.send("S")
    assert client_events(client, b"S I\r\n") == [Busy("S")]
    client.send("SI")
    assert client_events(client, b"S +\r\n") == [Overload("SI")]


def test_client_sir_streams_until_reset() -> None:
    client = MtSicsClient()
    client.send(Command.SIR)
    events = client_events(client, b"S D 1.0 kg\r\nS D 1.1 kg\r\nS S 1.2 kg\r\n")
    assert [e.status for e in events if isinstance(e, WeightReply)] == ["D", "D", "S"]
    assert all(isinstance(e, WeightReply) and e.command == "SIR" for e in events)
    assert client.outstanding is Command.SIR
    assert client.send(Command.RESET) == b"@\r\n"  # @ is allowed while SIR runs: it stops it
    stale = WeightReply("S", "S", Decimal("1.2"), "kg")
    assert client_events(client, b'S S 1.2 kg\r\nI4 A "42"\r\n') == [Unsolicited(stale), ResetReply("42")]
    assert client.outstanding is None
    assert client.unsolicited == 1


def test_client_errors_answer_any_command() -> None:
    client = MtSicsClient()
    client.send(Command.TAC)
    assert client_events(client, b"ES\r\n") == [SyntaxErrorReply()]
    assert client.outstanding is None
    client.send(Command.SI)
    assert client_events(client, b"S L\r\n") == [LogicalErrorReply("S")]


def test_client_replies_for_another_command_are_unsolicited() -> None:
    client = MtSicsClient()
    assert client_events(client, b"S S 1 kg\r\n") == [Unsolicited(WeightReply("S", "S", Decimal(1), "kg"))]
    client.send(Command.Z)
    assert client_events(client, b"T S 1 kg\r\nZ A\r\n") == [
        Unsolicited(TareReply("T", "S", Decimal(1), "kg")),
        ZeroReply("Z", "A"),
    ]
    client.send(Command.ZI)
    assert client_events(client, b"Z A\r\nZI D\r\n") == [
        Unsolicited(ZeroReply("Z", "A")),
        ZeroReply("ZI", "D"),
    ]


def test_client_abandon_forgets_the_command_and_a_half_line() -> None:
    client = MtSicsClient()
    client.send(Command.SI)
    assert client_events(client, b"S S   1") == []
    client.abandon()
    assert client.resync() == b"I4\r\n"
    assert client_events(client, b'I4 A "B1"\r\n') == [InStep(ResetReply("B1"))]
    client.send(Command.SI)
    assert client_events(client, b"S S 2 kg\r\n") == [WeightReply("SI", "S", Decimal(2), "kg")]


# --- the client after a timeout: out of step until I4 is answered ---------------------------------


def test_client_out_of_step_drops_every_line_before_the_i4_answer() -> None:
    client = MtSicsClient()
    client.send(Command.SI)
    client.abandon()  # no reply in time: "S S 5.000 kg" may still come
    assert not client.in_step
    with pytest.raises(MtSicsProtocolError, match="resync"):
        client.send(Command.SI)
    client.resync()
    late = WeightReply("S", "S", Decimal("5.000"), "kg")
    assert client_events(client, b'S S      5.000 kg\r\nI4 A "B1"\r\n') == [
        Late(late),
        InStep(ResetReply("B1")),
    ]
    assert client.in_step and client.outstanding is None and client.late == 1
    client.send(Command.SI)
    nine = WeightReply("SI", "S", Decimal("9.000"), "kg")
    assert client_events(client, b"S S      9.000 kg\r\n") == [nine]


def test_client_starts_out_of_step_when_told() -> None:
    client = MtSicsClient(in_step=False)
    with pytest.raises(MtSicsProtocolError):
        client.send(Command.T)
    client.resync()
    assert client_events(client, b"T S 1 kg\r\nI4 I\r\n") == [
        Late(TareReply("T", "S", Decimal(1), "kg")),
        InStep(Busy("I4")),
    ]


def test_client_an_unanswered_i4_answered_later_is_late_not_noise() -> None:
    client = MtSicsClient(in_step=False)
    client.resync()
    client.abandon()  # the I4 was not answered in time either
    client.resync()
    assert client_events(client, b'I4 A "B1"\r\n') == [InStep(ResetReply("B1"))]  # the first I4's answer
    client.send(Command.S)
    assert client_events(client, b'I4 A "B1"\r\nS S 3 kg\r\n') == [
        Late(ResetReply("B1")),  # the second I4's
        WeightReply("S", "S", Decimal(3), "kg"),
    ]
    assert client.unsolicited == 0


def test_client_an_error_line_answers_the_i4() -> None:
    """A balance that does not know I4 says ES; in order, so the line is in step after it."""
    client = MtSicsClient(in_step=False)
    client.resync()
    assert client_events(client, b"S S 5 kg\r\nES\r\n") == [
        Late(WeightReply("S", "S", Decimal(5), "kg")),
        InStep(SyntaxErrorReply()),
    ]
    client.send(Command.SI)
    assert client_events(client, b"S D 6 kg\r\n") == [WeightReply("SI", "D", Decimal(6), "kg")]


def test_client_abandon_with_nothing_outstanding_stays_in_step() -> None:
    client = MtSicsClient()
    client.abandon()
    assert client.in_step
    with pytest.raises(MtSicsProtocolError):
        client.send(Command.SI)
        client.resync()  # not while SI is outstanding


def test_client_after_an_error_line_put_it_in_step_the_next_error_line_puts_it_out() -> None:
    """The device answers I4 with ES: the ES that put the client in step may have been the abandoned
    command's, and the marker's own ES still owed. It then looks like the next command's answer, and
    that command's weight comes after it: out of step again, the weight comes out Late."""
    client = MtSicsClient()
    client.send(Command.SI)
    client.abandon()
    client.resync()
    assert client_events(client, b"ES\r\n") == [InStep(SyntaxErrorReply())]  # SI's answer, in fact
    client.send(Command.SI)
    assert client_events(client, b"ES\r\n") == [SyntaxErrorReply()]  # the I4's, in fact: reported
    assert not client.in_step
    client.resync()
    assert client_events(client, b"S S 5 kg\r\nES\r\n") == [
        Late(WeightReply("S", "S", Decimal(5), "kg")),  # the second SI's
        InStep(SyntaxErrorReply()),
    ]
    client.send(Command.SI)
    assert client_events(client, b"S S 6 kg\r\n") == [WeightReply("SI", "S", Decimal(6), "kg")]
    client.send(Command.SI)
    assert client_events(client, b"ES\r\n") == [SyntaxErrorReply()]  # a weight came in between
    assert client.in_step


@given(st.data())
def test_client_never_pairs_a_reply_with_a_later_command(data: st.DataObject) -> None:
    """A balance that answers in order, drops some commands, answers some with ES and others late
    (several exchanges later, or never): whatever the pattern, a weight the client gives as the
    answer to a command is that command's weight. Each request is answered with its own number; the
    balance answers I4 with its serial number, busy, or (not knowing I4) ES."""
    client = MtSicsClient(in_step=False)
    i4 = data.draw(st.sampled_from([b'I4 A "B1"\r\n', b"I4 I\r\n", b"ES\r\n"]), label="I4 answer")
    owed: list[bytes] = []  # answers the balance has yet to send, in order
    asked = 0
    for _ in range(data.draw(st.integers(1, 25), label="exchanges")):
        if client.in_step:
            asked += 1
            command = data.draw(st.sampled_from([Command.SI, Command.S, Command.T]))
            client.send(command)
            answer = (b"T S %d kg\r\n" if command is Command.T else b"S S %d kg\r\n") % asked
            if data.draw(st.integers(0, 4), label="ES") == 0:
                answer = b"ES\r\n"
        else:
            client.resync()
            answer = i4
        if not data.draw(st.booleans(), label="lost"):
            owed.append(answer)
        arrived = data.draw(st.integers(0, len(owed)), label="arrived")
        stream, owed = b"".join(owed[:arrived]), owed[arrived:]
        cut = data.draw(st.integers(0, len(stream)), label="cut")
        events = client_events(client, stream[:cut]) + client_events(client, stream[cut:])
        for event in events:
            if isinstance(event, WeightReply | TareReply):
                assert event.value == asked  # never an earlier request's
            if isinstance(event, Unsolicited):
                assert _is_error(event.reply)  # a leftover ES at worst, never a weight
            assert not isinstance(event, Unparsed)
        if client.outstanding is not None:
            client.abandon()  # its time ran out


def _is_error(reply: Reply) -> bool:
    return isinstance(reply, SyntaxErrorReply | TransmissionErrorReply | LogicalErrorReply)


# --- a 7-bit balance read by an 8-bit port: the parity bit in bit 7 of every byte ------------------


def test_parity_in_bit_7_in_every_chunking() -> None:
    for kind in ("E", "O", "M"):
        wire = parity.add(STREAM, kind)  # type: ignore[arg-type]
        for i in range(len(wire) + 1):
            parser = MtSicsParser()
            events, seen = [], []
            for chunk in (wire[:i], wire[i:]):
                parser.receive_data(chunk)
                while (event := parser.next_event()) is not NEED_DATA:
                    events.append(event)
                    seen.append(parser.parity)
            assert events == EXPECTED, (kind, i)
            assert seen == [kind] * len(EXPECTED)


@given(st.lists(REPLIES, min_size=1, max_size=10), st.sampled_from(["E", "O", "M"]), st.data())
def test_replies_with_parity_in_bit_7_decode_the_same(
    replies: list[Reply], kind: str, data: st.DataObject
) -> None:
    """Whole or split anywhere, a 7E1/7O1/7M1 balance's bytes read as 8 bits give the same replies,
    and the parser says which parity it found."""
    wire = parity.add(b"".join(encode_reply(r) for r in replies), kind)  # type: ignore[arg-type]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=5)))
    parser = MtSicsParser()
    events, seen = [], []
    for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        parser.receive_data(wire[a:b])
        while (event := parser.next_event()) is not NEED_DATA:
            events.append(event)
            seen.append(parser.parity)
    assert events == replies
    assert seen == [kind] * len(replies)


@given(st.lists(REPLIES, min_size=1, max_size=8), st.sampled_from([None, "E", "O", "M"]), st.data())
def test_a_flipped_bit_7_never_changes_a_reply(
    replies: list[Reply], kind: str | None, data: st.DataObject
) -> None:
    """Noise that flips bit 7 of one byte, on an 8N1 line or a 7-bit one read as 8 bits: the line
    it hits is lost (Unparsed) or decodes to what was sent — never to another reply."""
    stream = b"".join(encode_reply(r) for r in replies)
    wire = bytearray(parity.add(stream, kind) if kind else stream)  # type: ignore[arg-type]
    wire[data.draw(st.integers(0, len(wire) - 1))] ^= 0x80
    parsed = [e for e in feed([bytes(wire)]) if not isinstance(e, Unparsed)]
    it = iter(replies)
    assert all(any(p == r for r in it) for p in parsed)
    assert len(parsed) >= len(replies) - 1


def test_bit_7_that_follows_no_parity_is_unparsed() -> None:
    line = parity.add(b"S S      5.000 kg", "E")[:-1] + b"g"  # one byte without its parity bit
    assert feed([line + parity.add(b"\r\n", "E")]) == [Unparsed(line)]
