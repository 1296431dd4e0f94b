"""What the local API and pages answer when the edge's database fails (503 with the reason) and when a
request does not validate (422)."""

from __future__ import annotations

import logging
import sqlite3

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from kernel.json_safe import json_safe

log = logging.getLogger("edge.api")


def store_failed(request: Request, exc: Exception) -> Response:
    """The edge's database refused a write (or a read): 503 with the reason, not a bare 500.

    SQLITE_FULL is the disk (or the database's size limit) being full; any other operational
    failure (I/O error, read-only, corrupt file) is named as SQLite named it. A bug in our own SQL
    (IntegrityError, ProgrammingError…) stays a 500."""
    if not isinstance(exc, sqlite3.OperationalError) and type(exc) is not sqlite3.DatabaseError:
        raise exc
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == sqlite3.SQLITE_FULL:
        detail = f"the edge's disk is full: its database cannot be written ({exc}); free space on the edge"
    else:
        detail = f"the edge's database failed: {exc}"
    log.error("request refused: store failure", extra={"path": request.url.path, "error": str(exc)})
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "30"})


async def invalid_request(request: Request, exc: Exception) -> Response:
    """FastAPI's own 422 body, with every echoed input made valid JSON (a lone surrogate or a NaN in
    the input made the 422 itself fail as a 500)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": json_safe(jsonable_encoder(errors))}, status_code=422)


def install(app: FastAPI) -> None:
    """Store failures in the API's routes and the pages' alike; request validation made safe to echo."""
    app.add_exception_handler(sqlite3.DatabaseError, store_failed)
    app.add_exception_handler(RequestValidationError, invalid_request)
