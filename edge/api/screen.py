"""What a station screen shows, the screen a worker reads from two metres: the verdict word on its
colour with a shape beside it, what to do in plain words, the parcel code, weight against declared,
goods and the camera snapshot — rendered once into the page and again on every change (SSE)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from edge.api.html import TEMPLATES
from edge.checker import DecisionRecord
from edge.stations.base import StationState, StationView

EVIDENCE_NAME = re.compile(r"[0-9a-f]{64}\.jpg")


@dataclass(frozen=True)
class Look:
    word: str  # the big word: the verdict, also as text (not colour alone)
    tone: str  # the CSS colour class
    sign: str  # a shape next to the word, for those who cannot tell the colours apart
    say: str  # what to do, in plain words


LOOKS: dict[StationState, Look] = {
    StationState.RELEASE: Look("RELEASE", "go", "✓", "The parcel may go out"),
    StationState.HOLD: Look("HOLD", "stop", "✕", "Do not release: keep the parcel aside"),
    StationState.INSPECT: Look("INSPECT", "inspect", "!", "Take the parcel to customs inspection"),
    StationState.FAULT: Look("FAULT", "stop", "✕", "A device is not working: every parcel is held"),
    StationState.CHECKING: Look("CHECKING", "busy", "…", "Checking the parcel"),
    StationState.IDLE: Look("READY", "idle", "•", "Scan the next parcel"),
    StationState.PASS: Look("PASS", "go", "✓", "Drive on: the barrier opens"),
    StationState.STOP: Look("STOP", "stop", "✕", "Stop: stay at the barrier and see the reason"),
}
CURRENT = frozenset(
    {
        StationState.RELEASE,
        StationState.HOLD,
        StationState.INSPECT,
        StationState.FAULT,
        StationState.PASS,
        StationState.STOP,
    }
)


def look(state: StationState) -> Look:
    """How `state` shows; an unknown state shows as FAULT (every parcel held)."""
    return LOOKS.get(state, LOOKS[StationState.FAULT])


@dataclass(frozen=True)
class Snapshot:
    """A station view copied at the moment it changed (the view object itself is mutated later)."""

    name: str
    kind: str
    state: StationState
    faults: tuple[tuple[str, str], ...]
    last: DecisionRecord | None  # frozen already

    @classmethod
    def of(cls, view: StationView) -> Snapshot:
        return cls(view.name, view.kind, view.state, tuple(sorted(view.faults.items())), view.last)


def kg(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.3f} kg"


def evidence_url(evidence: str | None) -> str | None:
    """The snapshot's URL when the decision kept a JPEG under its content hash, else None."""
    name = Path(evidence).name if evidence else ""
    return f"/evidence/{name}" if EVIDENCE_NAME.fullmatch(name) else None


def parcel(record: DecisionRecord) -> dict[str, Any]:
    """A decision as the pages show it."""
    difference = None
    if record.weight_kg is not None and record.declared_kg is not None:
        difference = f"{record.weight_kg - record.declared_kg:+.3f} kg"
    return {
        "decision_id": record.decision_id,
        "station": record.station,
        "verdict": record.verdict.value,
        "code": record.code,
        "reason": record.reason,
        "codes": list(record.codes),
        "goods": record.goods,
        "weighed": kg(record.weight_kg),
        "declared": kg(record.declared_kg),
        "difference": difference,
        "snapshot": evidence_url(record.evidence),
        "operator": record.operator,
        "at": clock(record.created_at),
    }


def clock(iso: str | None) -> str:
    """`2025-05-01T09:14:03.123456Z` → `09:14:03 UTC` (the date is on every other screen)."""
    if not iso or "T" not in iso:
        return iso or ""
    return iso.split("T", 1)[1][:8] + " UTC"


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def render_screen(snap: Snapshot) -> str:
    """The verdict block of a station screen: the page embeds it, SSE sends it on every change."""
    return TEMPLATES.get_template("_screen.html").render(
        s=snap,
        look=look(snap.state),
        parcel=parcel(snap.last) if snap.last else None,
        current=snap.state in CURRENT,
    )


def sse(event: str, html: str) -> str:
    """One SSE message; every line of a multi-line payload gets its own `data:` field."""
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in html.splitlines()) + "\n"
