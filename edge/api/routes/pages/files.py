"""Files the pages load: a decision's camera snapshot (signed in, by its content hash) and the
pages' own CSS and script (open: no front-end build, nothing from the internet)."""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from edge.api.deps import AgentDep, PageUser
from edge.api.html import EDGE
from edge.api.screen import EVIDENCE_NAME

router = APIRouter(include_in_schema=False)

STATIC_TYPES = {"style.css": "text/css; charset=utf-8", "station.js": "text/javascript; charset=utf-8"}


@functools.cache
def static_file(name: str) -> bytes:
    """One of STATIC_TYPES' files, read once."""
    return (EDGE / "static" / name).read_bytes()


@router.get("/evidence/{name}")
async def evidence(name: str, agent: AgentDep, user: PageUser) -> Response:
    if user is None:
        return Response("log in first", status_code=401)
    if not EVIDENCE_NAME.fullmatch(name):
        return Response("not an evidence file name", status_code=404)
    path = Path(agent.settings.evidence_dir) / name
    if not path.is_file():
        return Response("no such evidence", status_code=404)
    # named by its content hash: it never changes
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    if name not in STATIC_TYPES:
        return Response("not found", status_code=404)
    return Response(static_file(name), media_type=STATIC_TYPES[name], headers={"Cache-Control": "no-cache"})
