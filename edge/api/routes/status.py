"""The agent's links and stores: feed sync, uplink, supervised tasks, releases, checkpoints."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from edge.api.deps import AgentDep, Operator
from edge.central_client import describe

router = APIRouter(tags=["operations"])


@router.get("/api/status")
async def status(agent: AgentDep, who: Operator) -> dict[str, Any]:
    s = agent.sync.status
    u = agent.uplink.status
    return {
        "sync": {
            "cursor": s.cursor,
            "age_s": agent.sync_age(),
            "caught_up": s.caught_up,
            "rejected_signatures": s.rejected_signatures,
            "superseded_unchecked": s.superseded_unchecked,
            "rejected_park": s.rejected_park,
            "rejected_rollback": s.rejected_rollback,
            "refused_pages": s.refused_pages,
            "refusals": s.refusals,
            "last_refusal": s.last_refusal,
            "checkpoint": {"cursor": s.checkpoint_cursor, "count": s.checkpoint_count},
            "central": describe(agent.settings.central),
            "lag_records": s.lag_records,
            "last_error": s.last_error,
            "records": agent.store.count_clearances(),
        },
        "uplink": {
            **agent.store.backlog(),
            "last_error": u.last_error,
            "refused": u.refused,
            "central_refusal": u.central_refusal.model_dump() if u.central_refusal else None,
            "acks_refused": u.acks_refused,
            "last_ack_problem": u.last_ack_problem,
            "acks_beyond_request": u.acks_beyond_request,
            "chain_checked": u.chain_checked,
            "chain_problem": u.chain_problem,
        },
        "tasks": {name: h.as_dict() for name, h in agent.tasks.health().items()},
        "releases": agent.checker.release_status(),
        "store": {"checkpoints": asdict(agent.store.checkpoints)},
    }
