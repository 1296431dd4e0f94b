"""Release-note lifecycle as one transition table, like the clearance lifecycle (central/lifecycle.py).

Statuses are SAS's `stucd` codes, strings as they travel in receipts: 0 applied, 1 approved, 2 passed
(single gate), 3 passed the first gate, 4 passed the second gate (dual gate), 5 deleted, 6 voided.

Who moves a note: the declaring enterprise applies it and may delete it until a vehicle has used it;
approval is the simulated customs' in `simulate` mode and a SAS221 receipt's in `customs` mode; a
refusal (SAS221 with manageResult other than 1) voids it, and so may an officer in simulate mode; the
gate passes it (the edge's passage event, or a SAS223 receipt in customs mode). A passed note never
moves again: the vehicle has left.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = ["OPEN", "Action", "IllegalNoteTransition", "Status", "transition"]


class Status(StrEnum):
    APPLIED = "0"
    APPROVED = "1"
    PASSED = "2"
    PASSED_FIRST_GATE = "3"
    PASSED_SECOND_GATE = "4"
    DELETED = "5"
    VOIDED = "6"

    @property
    def words(self) -> str:
        return _WORDS[self]


_WORDS: Final = {
    Status.APPLIED: "applied",
    Status.APPROVED: "approved",
    Status.PASSED: "passed the gate",
    Status.PASSED_FIRST_GATE: "passed the first gate",
    Status.PASSED_SECOND_GATE: "passed the second gate",
    Status.DELETED: "deleted",
    Status.VOIDED: "voided",
}

OPEN: Final = frozenset({Status.APPLIED, Status.APPROVED, Status.PASSED_FIRST_GATE})
"""A note in these holds its inventories: no other note may list them."""

LEFT: Final = frozenset({Status.PASSED, Status.PASSED_SECOND_GATE})
"""The vehicle has left the area on this note."""


class Action(StrEnum):
    APPLY = "apply"  # the enterprise's new note
    APPROVE = "approve"  # customs approved (SAS221 manageResult 1; simulated customs)
    REFUSE = "refuse"  # customs refused (SAS221 with another manageResult)
    PASS = "pass"  # through the gate (single gate)
    PASS_FIRST = "pass_first"  # through the first of two gates
    PASS_SECOND = "pass_second"  # through the second
    DELETE = "delete"  # the enterprise withdraws it
    VOID = "void"  # an officer voids it (simulate mode)


_0, _1, _2, _3, _4, _5, _6 = Status

TRANSITIONS: Final[dict[tuple[Status | None, Action], Status]] = {
    (None, Action.APPLY): _0,
    (_0, Action.APPROVE): _1,
    (_0, Action.REFUSE): _6,
    (_0, Action.DELETE): _5,
    (_0, Action.VOID): _6,
    (_1, Action.APPROVE): _1,  # a repeated approval receipt
    (_1, Action.PASS): _2,
    (_1, Action.PASS_FIRST): _3,
    (_1, Action.DELETE): _5,
    (_1, Action.VOID): _6,
    (_3, Action.PASS_SECOND): _4,
    # a repeated passage report (the uplink delivers at least once) changes nothing
    (_2, Action.PASS): _2,
    (_3, Action.PASS_FIRST): _3,
    (_4, Action.PASS_SECOND): _4,
}


class IllegalNoteTransition(Exception):
    """An action the note's status does not allow (the API answers 409)."""

    def __init__(self, status: Status | None, action: Action) -> None:
        where = "no note" if status is None else f"a note {Status(status).words} ({status})"
        super().__init__(f"cannot {action.value} {where}")
        self.status, self.action = status, action


def transition(status: Status | str | None, action: Action | str) -> Status:
    """The status after `action`, or IllegalNoteTransition."""
    current = None if status is None else Status(status)
    act = Action(action)
    try:
        return TRANSITIONS[(current, act)]
    except KeyError:
        raise IllegalNoteTransition(current, act) from None


def allowed(status: Status | str) -> list[Action]:
    current = Status(status)
    return [a for (s, a), to in TRANSITIONS.items() if s is current and to is not current]
