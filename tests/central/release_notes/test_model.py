"""A release note's own rules (no database): the rules between fields, SAS121 XML and receipts parsed
from hostile bytes, and the lifecycle table."""

from __future__ import annotations

import contextlib
import copy
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from central.ceb.errors import CebError
from central.release_notes import lifecycle
from central.release_notes.lifecycle import Action, IllegalNoteTransition, Status
from central.release_notes.model import NoteIn, problems
from central.release_notes.xml import parse_note, parse_receipt, receipt_xml
from firmware_sim import release_notes as notes

pytestmark = pytest.mark.one_backend

INVTS = ["64092026I000000001", "64092026I000000002"]


def good(**head: Any) -> dict[str, Any]:
    return notes.note("T-1", INVTS, goods_kg="1.6", **head)


def rules_of(body: dict[str, Any]) -> list[str]:
    return problems(NoteIn.model_validate(body))


def test_a_consistent_note_breaks_no_rule() -> None:
    assert rules_of(good()) == []
    assert (
        rules_of(
            good(
                containerNo="CSQU3054383",
                containerType="22G1",
                containerWt="2200",
                totalWt=str(8000 + 2200 + Decimal("1.6")),
            )
        )
        == []
    )
    empty = notes.note("T-2", [], goods_kg="0", note_type="6", bind_type=None)
    assert rules_of(empty) == []


def _edit(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(good())
    part, _, name = path.partition(".")
    if value is None:
        body[part].pop(name, None)
    else:
        body[part][name] = value
    return body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_edit("head.totalWt", "9000"), "totalWt 9000 is not vehicleWt"),
        (_edit("head.totalNetWt", "2"), "totalNetWt 2 exceeds totalGrossWt 1.6"),
        (_edit("head.bindTypecd", None), "needs bindTypecd"),
        (_edit("head.ioTypecd", "I"), "ioTypecd E"),
        (_edit("head.containerNo", "CSQU3054384"), "fails the ISO 6346 check digit"),
        (_edit("head.containerNo", "CSQU3054383"), "containerNo given without containerWt"),
        (_edit("head.containerWt", "100"), "containerWt given without containerNo"),
        (_edit("head.bindTypecd", "2"), "bindTypecd 2 (one vehicle, one declaration) but 2 related"),
        ({**good(), "acmp": [{"rtlBillTypecd": "CEB621", "rtlBillNo": INVTS[0]}] * 2}, "is listed twice"),
        (
            {**good(), "acmp": [{"rtlBillTypecd": "1", "rtlBillNo": "QD311124E000097136"}]},
            "is not CEB621",
        ),
        ({**good(), "acmp": []}, "needs at least one related document"),
        ({**good(), "acmp": [{"rtlBillTypecd": "CEB621", "rtlBillNo": "SHORT"}]}, "must be 18 characters"),
        (
            {**good(), "list": [{"passportSeqNo": 2, "grossWt": "1.6", "netWt": "1.6"}]},
            "passportSeqNo must run 1, 2, 3",
        ),
        (
            {**good(), "list": [{"passportSeqNo": 1, "grossWt": "1.5", "netWt": "1.5"}]},
            "the lines' grossWt add up to 1.5",
        ),
        (
            {**good(), "list": [{"passportSeqNo": 1, "grossWt": "1.6", "netWt": "1.7"}]},
            "netWt 1.7 exceeds grossWt 1.6",
        ),
        (
            notes.note("T-3", INVTS, goods_kg="1.6", note_type="5", bind_type="1"),
            "passportTypecd 5 carries no bindTypecd",
        ),
        (
            notes.note("T-4", [], goods_kg="3", note_type="6", bind_type=None),
            "totalGrossWt and totalNetWt must be 0",
        ),
        (
            {
                **notes.note("T-5", [], goods_kg="0", note_type="6", bind_type=None),
                "list": [{"passportSeqNo": 1, "grossWt": "0", "netWt": "0"}],
            },
            "carries no goods lines",
        ),
    ],
)
def test_each_rule_between_fields(body: dict[str, Any], expected: str) -> None:
    found = rules_of(body)
    assert any(expected in p for p in found), found


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vehicleWt", "-1"),
        ("vehicleWt", "NaN"),
        ("vehicleWt", "1e400"),
        ("totalGrossWt", "0.000001"),  # six decimals: SAS weights carry five
        ("masterCuscd", "64"),
        ("passportTypecd", "7"),
        ("ioTypecd", "X"),
        ("vehicleNo", " · "),  # nothing left of a plate once spaces and dots go
        ("sealNo", "A|B|C"),
        ("etpsPreentNo", "../etc/passwd"),
        ("unknownField", "1"),
    ],
)
def test_a_field_breaking_its_own_rule_is_refused(field: str, value: str) -> None:
    body = good()
    body["head"][field] = value
    with pytest.raises(ValidationError):
        NoteIn.model_validate(body)


def test_the_xml_form_reads_as_the_json_form() -> None:
    body = good(
        containerNo="CSQU 305438-3",
        containerWt="2200",
        totalWt=str(8000 + 2200 + Decimal("1.6")),
        sealNo="ES001|ES002",
    )
    from_xml = parse_note(notes.sas121_xml(body))
    assert from_xml == NoteIn.model_validate(body)
    assert from_xml.head.containerNo == "CSQU3054383" and from_xml.head.seal_ids == ("ES001", "ES002")
    assert from_xml.inventories == tuple(INVTS)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "xml_syntax"),
        (b"<Package><DataInfo>", "xml_syntax"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><Package/>', "entity_forbidden"),
        (b"<CEB311Message/>", "unsupported_message"),
        (b"<Package><DataInfo><BussinessData/></DataInfo></Package>", "structure"),
        (
            b"<Package><DataInfo><BussinessData><PassPortMessage><Evil/></PassPortMessage>"
            b"</BussinessData></DataInfo></Package>",
            "structure",
        ),
        (
            b"<Package><DataInfo><BussinessData><PassPortMessage><PassportHead><vehicleWt><x/></vehicleWt>"
            b"</PassportHead></PassPortMessage></BussinessData></DataInfo></Package>",
            "structure",
        ),
        (
            b"<Package><DataInfo><BussinessData><PassPortMessage><PassportHead><vehicleWt>x</vehicleWt>"
            b"</PassportHead></PassPortMessage></BussinessData></DataInfo></Package>",
            "field_rules",
        ),
    ],
)
def test_malformed_messages_are_refused_with_a_code(data: bytes, code: str) -> None:
    with pytest.raises(CebError) as refused:
        parse_note(data)
    assert refused.value.code == code


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=300).map(lambda t: f"<Package>{t}</Package>".encode()))
def test_any_bytes_are_a_note_a_receipt_or_a_ceb_error(data: bytes) -> None:
    for parse in (parse_note, parse_receipt):
        with contextlib.suppress(CebError):
            parse(data)


def test_receipts_round_trip_through_customs_xml() -> None:
    raw = notes.receipt_xml(
        "SAS223", "T-1", passport_no="Z6409E261206000000000001", plate="琼A12345", collected_kg="8001.6"
    )
    receipt = parse_receipt(raw)
    assert receipt.messageType == "SAS223" and receipt.approved and receipt.SasPassportBsc is not None
    assert receipt.SasPassportBsc.passCollectWt == "8001.6" and receipt.SasPassportBsc.stucd == "2"
    assert parse_receipt(receipt_xml(receipt)) == receipt


def test_the_lifecycle_table() -> None:
    assert lifecycle.transition(None, Action.APPLY) is Status.APPLIED
    assert lifecycle.transition("0", "approve") is Status.APPROVED
    assert lifecycle.transition("1", "pass_first") is Status.PASSED_FIRST_GATE
    assert lifecycle.transition("3", "pass_second") is Status.PASSED_SECOND_GATE
    assert lifecycle.transition("2", "pass") is Status.PASSED  # a repeated passage report
    for status in Status:
        for action in Action:
            try:
                to = lifecycle.transition(status, action)
            except IllegalNoteTransition:
                continue
            # once the vehicle has left, or the note is gone, nothing moves it again
            if status in lifecycle.LEFT or status in (Status.DELETED, Status.VOIDED):
                assert to is status
            # only an approved note passes a gate
            if to in lifecycle.LEFT | {Status.PASSED_FIRST_GATE} and to is not status:
                assert status in (Status.APPROVED, Status.PASSED_FIRST_GATE)
    with pytest.raises(IllegalNoteTransition, match="cannot pass a note applied"):
        lifecycle.transition("0", "pass")
