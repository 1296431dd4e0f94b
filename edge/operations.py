"""What the local API and the operator pages both do: read the discrepancy queue, override."""

from __future__ import annotations

from typing import Any

from edge import gate_checker
from edge.checker import DecisionRecord
from edge.stations.manual import Manual, OverrideRefused
from edge.stations.vehicle_gate import VehicleGate
from edge.store import Store


def discrepancy_queue(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    """Decisions that stopped a parcel and have not been overridden, newest first."""
    return store.discrepancy_queue(limit)


class NoSuchDecision(LookupError):
    """Not a recent decision of a manual station (only those are overridden here)."""


async def override(
    agent: Any, decision_id: str, *, operator: str, reason: str, station: str | None = None
) -> DecisionRecord:
    """A supervisor's override of a recent decision of a manual station, or of a vehicle gate's stop
    of the vehicle still waiting at it; raises NoSuchDecision or OverrideRefused (a customs finding,
    or already overridden)."""
    original = next((r for r in agent.recent if r.decision_id == decision_id), None)
    if original is None or (station is not None and original.station != station):
        raise NoSuchDecision("no such recent decision at this station")
    target = agent.stations.get(original.station)
    if isinstance(target, VehicleGate):
        try:
            return await target.override(original, operator=operator, reason=reason)
        except gate_checker.OverrideRefused as exc:
            raise OverrideRefused(str(exc)) from exc
    if not isinstance(target, Manual):
        raise NoSuchDecision(f"{original.station} is not a manual station or a vehicle gate")
    return await target.override(original, operator=operator, reason=reason)


__all__ = ["NoSuchDecision", "OverrideRefused", "discrepancy_queue", "override"]
