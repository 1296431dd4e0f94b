"""Clearance lifecycle of an inventory (DESIGN §3.3) as one transition table.

Every status change central makes (simulated customs, an officer's decision, a real CEB622 receipt in
production) goes through `transition`, so there is exactly one place that says what is legal and
anything else is refused with `IllegalTransition` (the API answers 409).

Statuses are the standard's returnStatus codes, kept as strings because that is how they travel in
receipts. The detained codes 501..599 behave alike, so the table names them once as `DETAINED`.

Cancellation (CEB623) and return (CEB625) are not statuses: they set a flag on the record. A flagged
record keeps its status (customs still knows it at that status) but may never move towards release:
see `BLOCKED_WHEN_CANCELLED` and `releasable`.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Final

from kernel.status import ClearanceStatus, is_detained, is_known


class Action(StrEnum):
    """What happens to a record; each legal (status, action) pair has one row in `TRANSITIONS`."""

    ACCEPT = "accept"  # a complete set passed comparison: into the customs database
    REJECT = "reject"  # comparison failed (at intake or on re-run) or an officer refused it
    RESUBMIT = "resubmit"  # a changed document (appType 2) passed comparison again
    MANUAL_REVIEW = "manual_review"
    REVIEW_COMPLETE = "review_complete"
    SELECT_INSPECTION = "select_inspection"
    RELEASE = "release"
    INSPECTION_RELEASE = "inspection_release"
    INSPECTION_DETAIN = "inspection_detain"  # needs code 501..599
    INSPECTION_RETURN = "inspection_return"
    CLOSE = "close"
    CUSTOMS_RECEIPT = "customs_receipt"  # production: a CEB622 status, needs code


DETAINED: Final = "501..599"
"""Pseudo-status standing for every detained code in `TRANSITIONS`."""


_R, _A, _M, _V = (
    ClearanceStatus.REJECTED,
    ClearanceStatus.ACCEPTED,
    ClearanceStatus.MANUAL_REVIEW,
    ClearanceStatus.REVIEW_COMPLETE,
)
_I, _X, _S, _C = (
    ClearanceStatus.INSPECTION,
    ClearanceStatus.RETURN_SHIPMENT,
    ClearanceStatus.RELEASED,
    ClearanceStatus.CLOSED,
)

TRANSITIONS: Final[dict[tuple[str | None, str], str]] = {
    # intake of a complete set: None means "no clearance record yet"
    (None, Action.ACCEPT): _A,
    (None, Action.REJECT): _R,
    # a rejected set comes back only through a changed document; a re-run that fails again stays 100
    (_R, Action.RESUBMIT): _A,
    (_R, Action.REJECT): _R,
    # before release, a changed document re-runs the comparison and restarts review
    (_A, Action.RESUBMIT): _A,
    (_A, Action.REJECT): _R,
    (_A, Action.MANUAL_REVIEW): _M,
    (_A, Action.REVIEW_COMPLETE): _V,
    (_A, Action.SELECT_INSPECTION): _I,
    (_M, Action.RESUBMIT): _A,
    (_M, Action.REJECT): _R,
    (_M, Action.REVIEW_COMPLETE): _V,
    (_M, Action.SELECT_INSPECTION): _I,
    (_V, Action.RESUBMIT): _A,
    (_V, Action.REJECT): _R,
    (_V, Action.SELECT_INSPECTION): _I,
    (_V, Action.RELEASE): _S,
    # goods under inspection or detained: only the officer's outcome moves them
    (_I, Action.INSPECTION_RELEASE): _S,
    (_I, Action.INSPECTION_DETAIN): DETAINED,
    (_I, Action.INSPECTION_RETURN): _X,
    (DETAINED, Action.INSPECTION_RELEASE): _S,
    (DETAINED, Action.INSPECTION_DETAIN): DETAINED,  # handed on, e.g. 501 -> 502
    (DETAINED, Action.INSPECTION_RETURN): _X,
    # released goods are never reviewed again; 899 and 700 have no way out
    (_S, Action.CLOSE): _C,
}
"""(from status or None, action) -> to status. `customs_receipt` is not listed: a receipt's code is
accepted exactly when some row here leads from the current status to it (or it repeats it)."""

CANCELLABLE: Final = frozenset({_A.value, _M.value, _V.value, _S.value})
"""Statuses from which a cancellation (CEB623) is accepted: anything in customs' hands that has not
left. Not 100 (nothing was accepted: delete the documents instead), not 500/5xx (an inspection or
detention runs to its outcome first), not 700 or 899 (over)."""

RETURNABLE: Final = frozenset({_S.value, _C.value})
"""Statuses from which a return request (CEB625) is accepted: the goods were released."""

BLOCKED_WHEN_CANCELLED: Final = frozenset({_A.value, _M.value, _V.value, _I.value, _S.value, _C.value})
"""Statuses a cancelled or returned record may not move to: every step towards release. Reject,
detain and return shipment stay possible."""

OFFICER_ACTIONS: Final[dict[str, frozenset[str]]] = {
    # central plays customs: the review and the release are its own steps (simulated, never an
    # officer's); an officer selects for inspection, records its outcome, refuses, or closes
    "simulate": frozenset(
        {
            Action.MANUAL_REVIEW.value,
            Action.SELECT_INSPECTION.value,
            Action.INSPECTION_RELEASE.value,
            Action.INSPECTION_DETAIN.value,
            Action.INSPECTION_RETURN.value,
            Action.REJECT.value,
            Action.CLOSE.value,
        }
    ),
    # real customs decides: every status comes from its receipts (CEB622), none from an officer here
    "customs": frozenset(),
}
"""Per clearance mode, the actions an officer may record through the API (`officer_action`)."""

_CODED_ACTIONS: Final = frozenset({Action.INSPECTION_DETAIN.value, Action.CUSTOMS_RECEIPT.value})


class IllegalTransition(Exception):
    """The table has no row for this step (or the record's cancel flag forbids it)."""

    def __init__(self, current: str | None, action: str, detail: str = "") -> None:
        self.current = current
        self.action = action
        self.detail = detail
        shown = "no record" if current is None else current
        super().__init__(f"{action} is not allowed from {shown}" + (f": {detail}" if detail else ""))


class InvalidCode(ValueError):
    """A status code is missing, not allowed for the action, or not a clearance status at all."""


def group(status: str | None) -> str | None:
    """The table row name for a status: detained codes collapse to `DETAINED`."""
    return DETAINED if status is not None and is_detained(status) else status


def is_status(code: str) -> bool:
    """True for every code central tracks as a clearance status (100..899 including 501..599)."""
    return is_known(code)


def transition(current: str | None, action: str, *, code: str | None = None, cancelled: bool = False) -> str:
    """The status after `action` on a record at `current` (None: no record yet).

    `code` is required for `inspection_detain` (501..599) and `customs_receipt` (any status code) and
    refused elsewhere, so a caller cannot smuggle a status into an action that decides it itself.
    `cancelled` is the record's CEB623/CEB625 flag: such a record never moves towards release.
    """
    _check_code(action, code)
    if action == Action.CUSTOMS_RECEIPT:
        target = _receipt_target(current, str(code))
    else:
        row = TRANSITIONS.get((group(current), action))
        if row is None:
            raise IllegalTransition(current, action)
        target = str(code) if row == DETAINED else str(row)
    if cancelled and target in BLOCKED_WHEN_CANCELLED and target != current:
        raise IllegalTransition(current, action, "the record is cancelled or returned")
    return target


def _check_code(action: str, code: str | None) -> None:
    if action not in _CODED_ACTIONS:
        if code is not None:
            raise InvalidCode(f"{action} takes no status code (got {code!r})")
        return
    if code is None:
        raise InvalidCode(f"{action} needs a status code")
    if action == Action.INSPECTION_DETAIN and not is_detained(code):
        raise InvalidCode(f"detention code must be 501..599, got {code!r}")
    if not is_status(code):
        raise InvalidCode(f"{code!r} is not a clearance status")


def _receipt_target(current: str | None, code: str) -> str:
    """A customs receipt may repeat the current status (receipts are resent) or take one table step."""
    if code == current:
        return code
    if any(frm == group(current) and to == group(code) for (frm, _), to in TRANSITIONS.items()):
        return code
    raise IllegalTransition(current, Action.CUSTOMS_RECEIPT, f"status {code} does not follow {current}")


def reachable(current: str | None, code: str) -> bool:
    """Can the record at `current` get to status `code` in some number of table steps? A customs
    receipt that does not follow the current status yet but is reachable was overtaken by one it
    follows (it waits for it); one that is not reachable never applies."""
    goal, seen, frontier = group(code), {group(current)}, [group(current)]
    while frontier:
        here = frontier.pop()
        for (frm, _), to in TRANSITIONS.items():
            if frm == here and to not in seen:
                if to == goal:
                    return True
                seen.add(to)
                frontier.append(to)
    return False


def allowed_actions(current: str | None, *, cancelled: bool = False, mode: str | None = None) -> list[str]:
    """Actions (other than customs_receipt) legal from `current`, in table order: for UIs and 409s.
    With `mode`, only those an officer may record in that clearance mode (`OFFICER_ACTIONS`): what
    the clearance's detail offers is exactly what the actions route accepts."""
    officer = None if mode is None else OFFICER_ACTIONS[mode]
    return [
        action
        for (frm, action), to in TRANSITIONS.items()
        if frm == group(current)
        and not (cancelled and to in BLOCKED_WHEN_CANCELLED and to != current)
        and (officer is None or action in officer)
    ]


def releasable(status: str, cancelled: bool) -> bool:
    """May the goods physically leave? Only at 800, and never once cancelled or returned."""
    return status == ClearanceStatus.RELEASED and not cancelled


def cancellable(status: str) -> bool:
    """May a cancellation (CEB623) be accepted for a record at `status`? See `CANCELLABLE`."""
    return status in CANCELLABLE


def returnable(status: str) -> bool:
    """May a return request (CEB625) be accepted for a record at `status`? See `RETURNABLE`."""
    return status in RETURNABLE


def table_rows() -> Iterator[tuple[str, str, str]]:
    """The table as (from, action, to) strings, "-" for no record: for docs and tests."""
    for (frm, action), to in TRANSITIONS.items():
        yield ("-" if frm is None else str(frm), str(action), str(to))


def markdown_table() -> str:
    """The transition table as a Markdown table, for docs."""
    lines = ["| from | action | to |", "|---|---|---|"]
    lines += [f"| {frm} | {action} | {to} |" for frm, action, to in table_rows()]
    return "\n".join(lines)
