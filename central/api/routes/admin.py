"""Tokens (admin) and customs receipts (officer, production mode)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from central.api.deps import Admin, Officer, PlatformDep
from central.api.errors import AUTH, ApiError, responses
from central.api.routes.documents import XML_BODY, read_xml
from central.auth import Role, create_token
from central.ceb.xml_in import CebError, parse_message
from central.config import ClearanceMode
from central.customs_receipts import ReceiptOutcome, apply_customs_receipts
from central.store import parks as pstore
from kernel.timefmt import iso_now, utc_now

router = APIRouter(prefix="/api/v1", tags=["administration"])


class TokenIn(BaseModel):
    role: Role
    name: str = Field(min_length=1, max_length=100)
    park_id: str | None = Field(None, description="required for edge tokens: the one park it reaches")
    edge_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="required for edge tokens: the one edge id it reports events for",
    )
    enterprise_codes: list[Annotated[str, Field(pattern=r"^[0-9A-Za-z]{1,18}$")]] | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="required for enterprise tokens: the enterprise codes (ebpCode, ebcCode, payCode,"
        " logisticsCode, agentCode) it declares for and reads receipts of",
    )


class TokenInfo(BaseModel):
    token_id: str
    role: str
    park_id: str | None
    edge_id: str | None = Field(
        None, description="an edge token's edge; null on one not yet used from before"
    )
    name: str
    created_at: str
    revoked_at: str | None


class NewToken(TokenInfo):
    token: str = Field(description="the secret; shown once, stored only as a hash")


def _info(row: pstore.TokenRow) -> TokenInfo:
    return TokenInfo(
        token_id=row.token_id,
        role=row.role,
        park_id=row.park_id,
        edge_id=row.edge_id,
        enterprise_codes=None if row.enterprise_codes is None else sorted(row.enterprise_codes),
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


@router.post(
    "/tokens",
    response_model=NewToken,
    status_code=201,
    summary="Create an API token",
    responses=responses(400, *AUTH, 404),
)
def post_token(platform: PlatformDep, token: Admin, body: TokenIn) -> NewToken:
    try:
        secret, row = create_token(
            platform.db,
            role=body.role,
            name=body.name,
            park_id=body.park_id,
            edge_id=body.edge_id,
            enterprise_codes=body.enterprise_codes,
        )
    except ValueError as exc:
        raise ApiError(400, "invalid_token_request", str(exc)) from exc
    return NewToken(token=secret, **_info(row).model_dump())


@router.get(
    "/tokens",
    response_model=list[TokenInfo],
    summary="List tokens (never their secrets)",
    responses=responses(*AUTH),
)
def get_tokens(platform: PlatformDep, token: Admin) -> list[TokenInfo]:
    return [_info(r) for r in pstore.list_tokens(platform.db)]


@router.delete(
    "/tokens/{token_id}", status_code=204, summary="Revoke a token", responses=responses(*AUTH, 404)
)
def delete_token(platform: PlatformDep, token: Admin, token_id: str) -> None:
    if not pstore.revoke_token(platform.db, token_id=token_id, now=iso_now()):
        raise ApiError(404, "not_found", f"no active token {token_id}")


@router.post(
    "/customs/receipts",
    response_model=list[ReceiptOutcome],
    summary="Apply customs receipts (CEB622 XML) in production mode",
    description="Each InventoryReturn sets the status of the inventory it names when the lifecycle "
    "allows that step; every receipt is answered with whether it was applied and why not. Customs "
    "mode only: in simulate mode central decides every status itself and answers 409.",
    responses=responses(400, *AUTH, 409, 413, 415),
    openapi_extra=XML_BODY,
)
async def post_customs_receipts(
    platform: PlatformDep, token: Officer, request: Request
) -> list[ReceiptOutcome]:
    if platform.settings.mode != ClearanceMode.CUSTOMS:
        raise ApiError(
            409,
            "not_customs_mode",
            f"central runs in {platform.settings.mode.value} mode: it plays customs and decides every"
            " status itself, so customs receipts (CEB622) are not taken; they apply in customs mode only",
        )
    data = await read_xml(request)
    try:
        message = parse_message(data)
    except CebError as exc:
        raise ApiError(400, exc.code, exc.reason) from exc
    if message.kind != "CEB622":
        raise ApiError(400, "unsupported_message", f"expected CEB622, got {message.kind}")
    return await run_in_threadpool(
        apply_customs_receipts, platform, list(message.receipts), actor=f"customs:{token.name}", now=utc_now()
    )
