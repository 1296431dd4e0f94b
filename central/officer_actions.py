"""An officer's decisions on a clearance: inspection outcomes, review, close."""

from __future__ import annotations

from datetime import datetime

from central import lifecycle
from central.clearing import Batch, StatusChange, move
from central.config import ClearanceMode
from central.lifecycle import Action, IllegalTransition
from central.platform import Platform
from central.store import clearances as cstore


def officer_action(
    platform: Platform, *, invt_no: str, action: str, code: str | None, info: str, actor: str, now: datetime
) -> StatusChange:
    """Record an officer's decision in one transaction. One the mode does not give an officer (in
    customs mode, any: every status comes from customs receipts) or the lifecycle does not allow
    raises `IllegalTransition`; an unknown inventory raises LookupError."""
    if action == Action.CUSTOMS_RECEIPT:
        raise IllegalTransition(None, action, "customs receipts come as CEB622 messages")
    with platform.db.write() as conn:
        rows = cstore.find(conn, invt_no=invt_no)
        if not rows:
            raise LookupError(f"no inventory {invt_no}")
        mode = platform.settings.mode.value
        if action not in lifecycle.OFFICER_ACTIONS[mode]:
            if mode == ClearanceMode.CUSTOMS:
                why = (
                    "in customs mode every status comes from customs receipts (CEB622), none from an officer"
                )
            else:
                allowed = ", ".join(sorted(lifecycle.OFFICER_ACTIONS[mode]))
                why = f"not an officer's action in {mode} mode (an officer may: {allowed})"
            raise IllegalTransition(rows[0].status, action, why)
        batch = Batch(conn=conn, platform=platform, now=now, actor=actor)
        move(batch, rows[0], None, action, info or action, code=code)
        batch.finish()
    return batch.changes[-1]
