"""The clearance transition table: legal steps, refused steps, cancellation, customs receipts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central.lifecycle import (
    CANCELLABLE,
    DETAINED,
    TRANSITIONS,
    Action,
    IllegalTransition,
    InvalidCode,
    allowed_actions,
    cancellable,
    markdown_table,
    releasable,
    returnable,
    table_rows,
    transition,
)
from kernel.status import DETAINED_CODES, FINAL_STATUSES, STATUS_CODES, ClearanceStatus

HAPPY_PATHS = [
    # (start, [(action, code)], end)
    (None, [("accept", None), ("review_complete", None), ("release", None), ("close", None)], "899"),
    (None, [("accept", None), ("select_inspection", None), ("inspection_release", None)], "800"),
    (None, [("accept", None), ("manual_review", None), ("review_complete", None)], "399"),
    ("120", [("select_inspection", None), ("inspection_detain", "503")], "503"),
    ("500", [("inspection_detain", "501"), ("inspection_detain", "502")], "502"),
    ("501", [("inspection_return", None)], "700"),
    ("599", [("inspection_release", None), ("close", None)], "899"),
    ("399", [("select_inspection", None), ("inspection_return", None)], "700"),
    (None, [("reject", None), ("reject", None), ("resubmit", None)], "120"),
    ("399", [("resubmit", None), ("review_complete", None)], "399"),
    ("300", [("reject", None)], "100"),
]


@pytest.mark.parametrize(("start", "steps", "end"), HAPPY_PATHS)
def test_legal_paths(start: str | None, steps: list[tuple[str, str | None]], end: str) -> None:
    status = start
    for action, code in steps:
        status = transition(status, action, code=code)
    assert status == end


ILLEGAL = [
    ("800", "review_complete"),  # released goods are never reviewed again
    ("800", "resubmit"),
    ("800", "reject"),
    ("800", "release"),
    ("899", "close"),
    ("899", "resubmit"),
    ("100", "accept"),  # only a changed document brings a rejected set back
    ("100", "review_complete"),
    ("120", "release"),  # no release without review
    ("120", "accept"),
    ("300", "release"),
    ("500", "release"),  # inspection ends with an officer's outcome
    ("500", "resubmit"),
    ("502", "resubmit"),
    ("700", "inspection_release"),
    ("399", "close"),
    (None, "release"),
    (None, "resubmit"),
    ("42", "accept"),
]


@pytest.mark.parametrize(("current", "action"), ILLEGAL)
def test_illegal_steps_are_refused(current: str | None, action: str) -> None:
    with pytest.raises(IllegalTransition) as info:
        transition(current, action)
    assert (info.value.current, info.value.action) == (current, action)


@pytest.mark.parametrize(
    ("action", "code"),
    [
        ("inspection_detain", None),
        ("inspection_detain", "600"),
        ("inspection_detain", "800"),
        ("customs_receipt", None),
        ("customs_receipt", "3"),  # electronic-port delivery state, not a clearance status
        ("customs_receipt", "-1"),
        ("release", "800"),
    ],
)
def test_codes_are_checked(action: str, code: str | None) -> None:
    with pytest.raises(InvalidCode):
        transition("500", action, code=code)


@pytest.mark.parametrize(
    ("current", "code"),
    [
        (None, "120"),
        (None, "100"),
        ("120", "399"),
        ("120", "300"),
        ("120", "500"),
        ("399", "800"),
        ("500", "501"),
        ("501", "599"),
        ("501", "700"),
        ("800", "899"),
        ("100", "120"),
        ("800", "800"),  # resent receipt
        ("899", "899"),
    ],
)
def test_customs_receipt_follows_the_table(current: str | None, code: str) -> None:
    assert transition(current, "customs_receipt", code=code) == code


@pytest.mark.parametrize(
    ("current", "code"),
    [(None, "800"), ("120", "800"), ("800", "399"), ("899", "800"), ("700", "800"), ("100", "399")],
)
def test_customs_receipt_off_the_table_is_refused(current: str | None, code: str) -> None:
    with pytest.raises(IllegalTransition):
        transition(current, "customs_receipt", code=code)


def test_cancelled_record_never_moves_towards_release() -> None:
    with pytest.raises(IllegalTransition):
        transition("399", "release", cancelled=True)
    with pytest.raises(IllegalTransition):
        transition("800", "close", cancelled=True)
    with pytest.raises(IllegalTransition):
        transition("120", "customs_receipt", code="399", cancelled=True)
    assert transition("399", "reject", cancelled=True) == "100"
    assert transition("800", "customs_receipt", code="800", cancelled=True) == "800"
    assert allowed_actions("399", cancelled=True) == ["reject"]


def test_releasable_only_at_800_and_not_cancelled() -> None:
    assert releasable("800", cancelled=False)
    assert not releasable("800", cancelled=True)
    for code in STATUS_CODES - {"800"}:
        assert not releasable(code, cancelled=False)


def test_cancellable_and_returnable() -> None:
    assert {c for c in STATUS_CODES if cancellable(c)} == {"120", "300", "399", "800"}
    assert not cancellable("899") and not cancellable("100") and not cancellable("500")
    assert {c for c in STATUS_CODES if returnable(c)} == {"800", "899"}


def test_table_only_names_known_statuses() -> None:
    known = {s.value for s in ClearanceStatus} | {DETAINED}
    for (frm, action), to in TRANSITIONS.items():
        assert frm is None or frm in known
        assert to in known
        assert action in {a.value for a in Action}
    assert CANCELLABLE <= STATUS_CODES


def test_final_statuses_have_no_way_out() -> None:
    for status in FINAL_STATUSES:
        assert allowed_actions(status) == []


def test_table_renders() -> None:
    rows = list(table_rows())
    assert ("-", "accept", "120") in rows and ("800", "close", "899") in rows
    assert len(rows) == len(TRANSITIONS)
    text = markdown_table()
    assert text.count("\n") == len(rows) + 1 and "| 500 | inspection_detain | 501..599 |" in text


step = st.tuples(
    st.sampled_from([a.value for a in Action]),
    st.sampled_from([None, "100", "120", "300", "399", "500", "501", "550", "599", "700", "800", "899"]),
)


def _apply(status: str | None, action: str, code: str | None) -> str | None:
    try:
        return transition(status, action, code=code)
    except (IllegalTransition, InvalidCode):
        return status


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=30))
def test_random_sequences_stay_in_the_table(steps: list[tuple[str, str | None]]) -> None:
    status: str | None = None
    seen_closed = False
    for action, code in steps:
        before = status
        status = _apply(status, action, code)
        assert status is None or status in STATUS_CODES
        if status != before:
            assert status is not None
            # every change is a table row (or a detention code inside the detained group)
            targets = {
                to
                for (frm, _), to in TRANSITIONS.items()
                if frm == (DETAINED if before in DETAINED_CODES else before)
            }
            assert (DETAINED if status in DETAINED_CODES else status) in targets
        if seen_closed:
            assert status == "899"  # absorbing
        seen_closed = seen_closed or status == "899"


@given(st.sampled_from([a.value for a in Action]), st.sampled_from(sorted(STATUS_CODES)))
def test_899_is_absorbing(action: str, code: str) -> None:
    assert _apply("899", action, code) == "899"
    assert _apply("899", action, None) == "899"
