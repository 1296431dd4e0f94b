"""Lookups for officers and operators, and officer decisions on a clearance."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from central.api.deps import Officer, PlatformDep
from central.api.errors import AUTH, ApiError, responses
from central.clearing import StatusChange
from central.lifecycle import Action, allowed_actions
from central.officer_actions import officer_action
from central.store import clearances as cstore
from central.store import documents as dstore
from kernel.timefmt import utc_now

router = APIRouter(prefix="/api/v1/clearances", tags=["clearances"])


class Clearance(BaseModel):
    invtNo: str | None
    park_id: str | None
    orderNo: str
    ebpCode: str
    ebcCode: str
    logisticsCode: str
    logisticsNo: str
    grossWeight: str
    netWeight: str
    declaredValue: str
    goods: str
    status: str
    cancelled: bool
    version: int
    updated_at: str
    allowed_actions: list[str] = Field(
        description="what an officer may record from this status, in this clearance mode"
        " (POST …/actions): none in customs mode, where every status comes from customs receipts"
    )


class ClearanceDetail(BaseModel):
    clearance: Clearance | None = Field(
        description="null while the inventory waits for the rest of its set (see `missing`)"
    )
    missing: list[str] = Field(
        default_factory=list, description="documents the set still lacks: order, payment, waybill"
    )
    documents: dict[str, dict[str, Any] | None] = Field(
        description="order, payment, waybill, inventory (and cancellation/return) as last submitted"
    )
    comparison: list[dict[str, Any]] | None = Field(description="failed rules of the last comparison")
    risk: list[str] | None = Field(description="why it was selected for inspection")
    history: list[dict[str, Any]]
    customs_receipts: list[dict[str, Any]] = Field(
        default_factory=list,
        description="customs receipts (CEB622) taken for it, in returnTime order, each with its state:"
        " applied, waiting (for the receipt it follows), stale or refused, and why",
    )


def _clearance(row: cstore.ClearanceRow, mode: str) -> Clearance:
    return Clearance(
        invtNo=row.invt_no,
        park_id=row.park_id,
        orderNo=row.order_no,
        ebpCode=row.ebp_code,
        ebcCode=row.ebc_code,
        logisticsCode=row.logistics_code,
        logisticsNo=row.logistics_no,
        grossWeight=row.gross_weight,
        netWeight=row.net_weight,
        declaredValue=row.declared_value,
        goods=row.goods,
        status=row.status,
        cancelled=row.cancelled,
        version=row.version,
        updated_at=row.updated_at,
        allowed_actions=allowed_actions(row.status, cancelled=row.cancelled, mode=mode),
    )


NAMES = {
    "CEB311": "order",
    "CEB411": "payment",
    "CEB511": "waybill",
    "CEB621": "inventory",
    "CEB623": "cancellation",
    "CEB625": "return",
}


def _documents(
    platform: PlatformDep, *, ebp_code: str, order_no: str, logistics_code: str, logistics_no: str
) -> dict[str, dict[str, Any] | None]:
    docs: dict[str, dict[str, Any] | None] = dict.fromkeys(NAMES.values())
    for d in dstore.documents_of_set(
        platform.db,
        ebp_code=ebp_code,
        order_no=order_no,
        logistics_code=logistics_code,
        logistics_no=logistics_no,
    ):
        if not d.deleted:
            docs[NAMES.get(d.kind, d.kind)] = d.body
    return docs


def _detail(platform: PlatformDep, row: cstore.ClearanceRow) -> ClearanceDetail:
    docs = _documents(
        platform,
        ebp_code=row.ebp_code,
        order_no=row.order_no,
        logistics_code=row.logistics_code,
        logistics_no=row.logistics_no,
    )
    return ClearanceDetail(
        clearance=_clearance(row, platform.settings.mode.value),
        documents=docs,
        comparison=row.comparison,
        risk=row.risk,
        history=cstore.history(platform.db, clearance_id=row.clearance_id),
        customs_receipts=[
            {
                "returnStatus": r.return_status,
                "returnTime": r.return_time,
                "returnInfo": r.return_info,
                "state": r.state,
                "reason": r.reason,
                "received_at": r.received_at,
            }
            for r in cstore.customs_receipts(platform.db, clearance_id=row.clearance_id)
        ],
    )


def _pending(platform: PlatformDep, inventory: dstore.DocumentRow) -> ClearanceDetail:
    body = inventory.body
    docs = _documents(
        platform,
        ebp_code=body["ebpCode"],
        order_no=body["orderNo"],
        logistics_code=body["logisticsCode"],
        logistics_no=body["logisticsNo"],
    )
    docs["inventory"] = body
    missing = [name for name in ("order", "payment", "waybill") if docs[name] is None]
    return ClearanceDetail(
        clearance=None, missing=missing, documents=docs, comparison=None, risk=None, history=[]
    )


@router.get(
    "",
    response_model=list[ClearanceDetail],
    summary="Find a parcel's clearance with its documents, comparison result and history",
    description="Give one of logisticsNo, orderNo or invtNo. An inventory still waiting for its "
    "order, payment or waybill is listed with `clearance: null` and what is `missing`.",
    responses=responses(400, *AUTH),
)
def lookup(
    platform: PlatformDep,
    token: Officer,
    logisticsNo: Annotated[str | None, Query(max_length=60)] = None,
    orderNo: Annotated[str | None, Query(max_length=60)] = None,
    invtNo: Annotated[str | None, Query(max_length=18)] = None,
) -> list[ClearanceDetail]:
    if not (logisticsNo or orderNo or invtNo):
        raise ApiError(400, "missing_query", "give logisticsNo, orderNo or invtNo")
    rows = cstore.find(
        platform.db.reader(),
        logistics_no=logisticsNo or None,
        order_no=orderNo or None,
        invt_no=invtNo or None,
    )
    pending = dstore.pending_inventories(
        platform.db, order_no=orderNo or None, logistics_no=logisticsNo or None, invt_no=invtNo or None
    )
    return [_detail(platform, r) for r in rows] + [_pending(platform, d) for d in pending]


_ACTION_HELP = (
    "simulate mode: manual_review, select_inspection, inspection_release, inspection_detain,"
    " inspection_return, reject or close (the review and the release are the simulated customs' own);"
    " customs mode: none, every status comes from customs receipts (CEB622): 409"
)


class DetainIn(BaseModel):
    """inspection_detain: the goods are detained under a code of 501..599, which it must give."""

    action: Literal[Action.INSPECTION_DETAIN] = Field(description=_ACTION_HELP)
    code: str = Field(pattern=r"^\d{3}$", description="the detention code, 501..599")
    info: str = Field("", max_length=1000, description="the officer's note, goes into returnInfo")


class OtherActionIn(BaseModel):
    action: Literal[tuple(a for a in Action if a is not Action.INSPECTION_DETAIN)] = Field(  # type: ignore[valid-type]  # a Literal built from the enum: pydantic reads it, mypy cannot
        description=_ACTION_HELP
    )
    code: str | None = Field(None, pattern=r"^\d{3}$", description="no other action takes a code (400)")
    info: str = Field("", max_length=1000, description="the officer's note, goes into returnInfo")


ActionIn = Annotated[DetainIn | OtherActionIn, Field(discriminator="action")]


@router.post(
    "/{invtNo}/actions",
    response_model=StatusChange,
    summary="Record an officer's decision: inspection outcome, selection, refusal, close (simulate mode)",
    responses=responses(400, *AUTH, 404, 409),
)
def post_action(
    platform: PlatformDep, token: Officer, invtNo: str, body: Annotated[ActionIn, Body()]
) -> StatusChange:
    return officer_action(
        platform,
        invt_no=invtNo,
        action=body.action.value,
        code=body.code,
        info=body.info,
        actor=f"officer:{token.name}",
        now=utc_now(),
    )
