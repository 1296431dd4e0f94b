"""One error shape for every refusal, and the handlers that produce it."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from central.lifecycle import IllegalTransition, InvalidCode
from central.store.db import DatabaseUnavailable
from kernel.json_safe import json_safe

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """Every 4xx (except FastAPI's 422 body validation) and 5xx answers with this."""

    error: str = Field(description="machine-readable code, e.g. xml_syntax, illegal_transition")
    detail: str = Field(description="what was wrong, in words")


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the error codes a route can answer."""
    words = {
        400: "Bad request",
        401: "No or unknown token",
        403: "Token lacks the role or park",
        404: "Not found",
        409: "Conflicts with the record's state",
        413: "Body too large",
        415: "Unsupported media type",
    }
    return {c: {"model": ErrorBody, "description": words.get(c, "Error")} for c in codes}


AUTH = (401, 403)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own 422 body, with every echoed input made valid JSON."""
        return JSONResponse({"detail": json_safe(jsonable_encoder(exc.errors()))}, 422)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            ErrorBody(error=exc.error, detail=exc.detail).model_dump(), exc.status, headers=exc.headers
        )

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        """Framework refusals (unparseable body, unknown path, wrong method) in the same shape."""
        try:
            code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
        except ValueError:
            code = "http_error"
        return JSONResponse(
            ErrorBody(error=code, detail=str(exc.detail)).model_dump(), exc.status_code, headers=exc.headers
        )

    @app.exception_handler(DatabaseUnavailable)
    async def _unavailable(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.warning("database unavailable", extra={"path": request.url.path, "error": str(exc)})
        body = ErrorBody(
            error="database_unavailable", detail="the database is not reachable; nothing was stored, retry"
        )
        return JSONResponse(body.model_dump(), 503, headers={"Retry-After": "1"})

    @app.exception_handler(IllegalTransition)
    async def _illegal(_: Request, exc: IllegalTransition) -> JSONResponse:
        return JSONResponse(ErrorBody(error="illegal_transition", detail=str(exc)).model_dump(), 409)

    @app.exception_handler(InvalidCode)
    async def _invalid_code(_: Request, exc: InvalidCode) -> JSONResponse:
        return JSONResponse(ErrorBody(error="invalid_code", detail=str(exc)).model_dump(), 400)

    @app.exception_handler(LookupError)
    async def _not_found(_: Request, exc: LookupError) -> JSONResponse:
        # the message as raised: str() of a KeyError quotes it, and stripping quotes ate one of ours
        detail = str(exc.args[0]) if exc.args else "not found"
        return JSONResponse(ErrorBody(error="not_found", detail=detail).model_dump(), 404)
