"""Release notes (核放单) and their receipts; the vehicle registry the notes are checked against."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, BeforeValidator, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from central.api.deps import Enterprise, EnterpriseOrOfficer, Officer, PlatformDep
from central.api.errors import AUTH, ApiError, responses
from central.api.routes.documents import XML_BODY, XML_TYPES
from central.auth import Role
from central.ceb.errors import CebError
from central.release_notes import service
from central.release_notes.lifecycle import Action
from central.release_notes.model import Kg, NoteIn, normalise_plate
from central.release_notes.receipts import NoteReceipt
from central.release_notes.service import NoteRefused
from central.release_notes.xml import parse_note, parse_receipt, receipt_xml
from central.store import release_notes as store
from central.store.parks import TokenRow
from kernel.timefmt import utc_now

router = APIRouter(prefix="/api/v1", tags=["release notes"])


class NoteView(BaseModel):
    etpsPreentNo: str = Field(description="the enterprise's note number")
    passportNo: str | None = Field(description="customs' number, once approved")
    park_id: str
    status: str = Field(
        description="SAS stucd: 0 applied, 1 approved, 2 passed, 3/4 first/second gate, 5 deleted, 6 voided"
    )
    status_words: str
    version: int
    created_at: str
    updated_at: str
    inventories: list[str]
    note: dict[str, Any] = Field(
        description="head, list and acmp as taken (vehicleIcNo from the registry if the note named none)"
    )
    history: list[dict[str, Any]]
    receipts: list[dict[str, Any]] = Field(
        description="SAS221/SAS223 receipts, central's (simulate mode) or customs'"
    )
    allowed_actions: list[str]


class ReceiptOutcomeOut(BaseModel):
    etpsPreentNo: str
    messageType: str
    applied: bool
    status: str | None
    info: str


class VoidIn(BaseModel):
    info: str = Field("", max_length=1000, description="why: goes into the note's history")


def _acting_for(token: TokenRow) -> frozenset[str] | None:
    return (token.enterprise_codes or frozenset()) if token.role == Role.ENTERPRISE else None


def _refused(exc: NoteRefused) -> ApiError:
    return ApiError(exc.status, exc.code, str(exc))


def _view(platform: PlatformDep, row: store.NoteRow) -> NoteView:
    return NoteView.model_validate(service.view(platform.db.reader(), row))


def _take(platform: PlatformDep, token: TokenRow, note: NoteIn) -> NoteView:
    try:
        row = service.apply_note(
            platform, note, acting_for=_acting_for(token), actor=f"token:{token.token_id}", now=utc_now()
        )
    except NoteRefused as exc:
        raise _refused(exc) from None
    return _view(platform, row)


@router.post(
    "/release-notes",
    response_model=NoteView,
    status_code=201,
    summary="Apply for a release note (核放单), SAS121 fields as JSON",
    description="`{head, list, acmp}` with SAS121's field names. Cross-border parcels are listed as "
    "related documents of type CEB621 (rtlBillNo = invtNo). Refused whole with 400 and every problem: "
    "types 5/6 carry no binding type or related documents, type 6 no goods; totals add up; the "
    "container number passes ISO 6346; the vehicle is registered with this tare and card; every "
    "inventory is in the park, at 800, not cancelled and on no other open note; their gross weights "
    "add up to totalGrossWt within the configured tolerance. A repeated etpsPreentNo is 409. In "
    "simulate mode the simulated customs approves it at once (status 1, a SAS221 receipt).",
    responses=responses(400, *AUTH, 409, 413),
)
def post_note(platform: PlatformDep, token: Enterprise, note: Annotated[NoteIn, Body()]) -> NoteView:
    return _take(platform, token, note)


@router.post(
    "/sas/messages",
    response_model=NoteView,
    status_code=201,
    summary="Apply for a release note as a SAS121 XML message",
    description="Signature/Object/Package/DataInfo/BussinessData/PassPortMessage with PassportHead, "
    "PassportList and PassportAcmp (a bare Package root is taken too). Same checks as the JSON form; "
    "a malformed message is 400 with the element and rule.",
    responses=responses(400, *AUTH, 409, 413, 415),
    openapi_extra=XML_BODY,
)
async def post_sas_message(platform: PlatformDep, token: Enterprise, request: Request) -> NoteView:
    data = await _xml(request)
    try:
        note = parse_note(data)
    except CebError as exc:
        raise ApiError(400, exc.code, exc.reason) from exc
    return await run_in_threadpool(_take, platform, token, note)


async def _xml(request: Request) -> bytes:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in XML_TYPES:
        raise ApiError(415, "unsupported_media_type", f"send SAS messages as application/xml, not {ctype!r}")
    return await request.body()


def _own(token: TokenRow, row: store.NoteRow) -> None:
    acting = _acting_for(token)
    if acting is not None and row.declarant not in acting:
        raise ApiError(404, "not_found", f"no release note {row.note_no}")


@router.get(
    "/release-notes",
    response_model=list[NoteView],
    summary="List release notes, newest first (an enterprise sees the ones it declared)",
    responses=responses(*AUTH),
)
def list_notes(
    platform: PlatformDep,
    token: EnterpriseOrOfficer,
    park_id: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(pattern=r"^[0-6]$")] = None,
    plate: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[NoteView]:
    rows = store.listed(platform.db.reader(), park_id=park_id, status=status, plate=plate, limit=limit)
    acting = _acting_for(token)
    return [_view(platform, r) for r in rows if acting is None or r.declarant in acting]


def _get(platform: PlatformDep, token: TokenRow, note_no: str) -> store.NoteRow:
    row = store.get(platform.db.reader(), note_no=note_no)
    if row is None:
        raise ApiError(404, "not_found", f"no release note {note_no}")
    _own(token, row)
    return row


@router.get(
    "/release-notes/{etpsPreentNo}",
    response_model=NoteView,
    summary="One release note with its history and receipts",
    responses=responses(*AUTH, 404),
)
def get_note(platform: PlatformDep, token: EnterpriseOrOfficer, etpsPreentNo: str) -> NoteView:
    return _view(platform, _get(platform, token, etpsPreentNo))


@router.get(
    "/release-notes/{etpsPreentNo}/receipts",
    response_model=list[NoteReceipt],
    summary="A note's SAS221/SAS223 receipts as JSON, or the latest as customs' XML (format=xml)",
    responses={**responses(*AUTH, 404), 200: {"content": {"application/xml": {}}}},
)
def get_note_receipts(
    platform: PlatformDep,
    token: EnterpriseOrOfficer,
    etpsPreentNo: str,
    format: Annotated[str, Query(pattern="^(json|xml)$")] = "json",
) -> list[NoteReceipt] | Response:
    row = _get(platform, token, etpsPreentNo)
    receipts = [
        NoteReceipt.model_validate(r["body"])
        for r in store.receipts(platform.db.reader(), note_no=row.note_no)
    ]
    if format == "json":
        return receipts
    if not receipts:
        raise ApiError(404, "not_found", f"note {etpsPreentNo} has no receipt yet")
    return Response(receipt_xml(receipts[-1]), media_type="application/xml")


@router.post(
    "/release-notes/{etpsPreentNo}/delete",
    response_model=NoteView,
    summary="Delete a note no vehicle has used (the declaring enterprise): status 5, its inventories freed",
    responses=responses(*AUTH, 404, 409),
)
def delete_note(platform: PlatformDep, token: Enterprise, etpsPreentNo: str) -> NoteView:
    return _change(platform, token, etpsPreentNo, Action.DELETE, "deleted by the enterprise")


@router.post(
    "/release-notes/{etpsPreentNo}/void",
    response_model=NoteView,
    summary="Void a note no vehicle has used (an officer, simulate mode): status 6, its inventories freed",
    responses=responses(400, *AUTH, 404, 409),
)
def void_note(
    platform: PlatformDep, token: Officer, etpsPreentNo: str, body: Annotated[VoidIn, Body()]
) -> NoteView:
    return _change(platform, token, etpsPreentNo, Action.VOID, body.info or "voided by an officer")


def _change(platform: PlatformDep, token: TokenRow, note_no: str, action: Action, info: str) -> NoteView:
    try:
        row = service.change_status(
            platform,
            note_no=note_no,
            action=action,
            acting_for=_acting_for(token),
            actor=f"token:{token.token_id}",
            info=info,
            now=utc_now(),
        )
    except NoteRefused as exc:
        if exc.status == 403:  # another enterprise's note is not shown to exist
            raise ApiError(404, "not_found", f"no release note {note_no}") from None
        raise _refused(exc) from None
    return _view(platform, row)


_RECEIPTS = TypeAdapter(list[NoteReceipt])


@router.post(
    "/customs/release-note-receipts",
    response_model=list[ReceiptOutcomeOut],
    summary="Apply customs' SAS221 (approval) / SAS223 (passed the gate) receipts, customs mode",
    description="One receipt as customs' XML (application/xml), or a JSON list of receipts in the "
    "same shape (`messageType`, `HdeApprResult`, `SasPassportBsc`). Each is answered with whether it "
    "was applied and why not. In simulate mode central approves notes itself: 409.",
    responses=responses(400, *AUTH, 409, 413, 415),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                **{t: {"schema": {"type": "string"}} for t in XML_TYPES},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        }
    },
)
async def post_note_receipts(
    platform: PlatformDep, token: Officer, request: Request
) -> list[ReceiptOutcomeOut]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data = await request.body()
    if ctype in XML_TYPES:
        try:
            receipts = [parse_receipt(data)]
        except CebError as exc:
            raise ApiError(400, exc.code, exc.reason) from exc
    elif ctype == "application/json":
        try:
            receipts = _RECEIPTS.validate_python(json.loads(data))
        except (ValueError, ValidationError) as exc:
            raise ApiError(
                400, "invalid_receipt", f"not a JSON list of SAS221/SAS223 receipts: {exc}"
            ) from None
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send receipts as application/xml or application/json, not {ctype!r}",
        )
    try:
        outcomes = await run_in_threadpool(
            service.apply_receipts, platform, receipts, actor=f"customs:{token.token_id}", now=utc_now()
        )
    except NoteRefused as exc:
        raise _refused(exc) from None
    return [ReceiptOutcomeOut(**o.__dict__) for o in outcomes]


# --- vehicles -----------------------------------------------------------------------------------------


class VehicleIn(BaseModel):
    vehicleIcNo: Annotated[
        str | None, BeforeValidator(lambda v: v.strip() or None if isinstance(v, str) else v)
    ] = Field(None, max_length=64, pattern=r"^[A-Za-z0-9]+$", description="electronic plate / IC card")
    vehicleWt: Kg = Field(description="registered tare, kg")
    vehicleFrameNo: str | None = Field(None, max_length=32)
    vehicleFrameWt: Decimal | None = Field(
        None, ge=0, le=Decimal("999999.99999"), decimal_places=5, allow_inf_nan=False
    )
    ownerCode: str = Field(
        min_length=1, max_length=10, pattern=r"^[A-Za-z0-9]+$", description="the registering enterprise"
    )


class Vehicle(BaseModel):
    vehicleNo: str
    vehicleIcNo: str | None
    vehicleWt: str
    vehicleFrameNo: str | None
    vehicleFrameWt: str | None
    ownerCode: str
    confirmedBy: str | None = Field(
        description="the officer who confirmed the registered weights (null: an enterprise's, not yet)"
    )
    registered_at: str
    updated_at: str


def _vehicle(row: store.VehicleRow) -> Vehicle:
    return Vehicle(
        vehicleNo=row.plate,
        vehicleIcNo=row.ic_no,
        vehicleWt=row.tare_kg,
        vehicleFrameNo=row.frame_no,
        vehicleFrameWt=row.frame_kg,
        ownerCode=row.owner_code,
        confirmedBy=row.confirmed_by,
        registered_at=row.registered_at,
        updated_at=row.updated_at,
    )


PLATE = r"^\S{1,32}$"


@router.put(
    "/vehicles/{vehicleNo}",
    response_model=Vehicle,
    tags=["vehicles"],
    summary="Register a vehicle, or update its registration (SAS131-like): card and tare",
    description="The plate is kept as the gate compares it (upper case, no spaces, hyphens or dots:"
    " 琼A·12345 is 琼A12345). An enterprise registers its own vehicles and may change their card; a"
    " registered tare or frame weight is changed by an officer only, and a note's vehicle needs its"
    " weights confirmed by an officer (an officer's PUT of the same registration confirms it).",
    responses=responses(400, *AUTH, 409),
)
def put_vehicle(
    platform: PlatformDep, token: EnterpriseOrOfficer, vehicleNo: str, body: Annotated[VehicleIn, Body()]
) -> Vehicle:
    if not (1 <= len(vehicleNo) <= 32) or any(c.isspace() for c in vehicleNo):
        raise ApiError(400, "invalid_plate", "a plate is 1 to 32 characters without spaces")
    try:
        row = service.register_vehicle(
            platform,
            plate=vehicleNo,
            ic_no=body.vehicleIcNo,
            tare_kg=body.vehicleWt,
            frame_no=body.vehicleFrameNo,
            frame_kg=body.vehicleFrameWt,
            owner_code=body.ownerCode,
            acting_for=_acting_for(token),
            now=utc_now(),
            actor=f"{token.role}:{token.name}",
        )
    except NoteRefused as exc:
        raise _refused(exc) from None
    return _vehicle(row)


@router.get(
    "/vehicles",
    response_model=list[Vehicle],
    tags=["vehicles"],
    summary="Registered vehicles (an enterprise sees its own)",
    responses=responses(*AUTH),
)
def list_vehicles(platform: PlatformDep, token: EnterpriseOrOfficer) -> list[Vehicle]:
    acting = _acting_for(token)
    rows = store.vehicles(platform.db.reader(), owner_codes=None if acting is None else sorted(acting))
    return [_vehicle(r) for r in rows]


@router.get(
    "/vehicles/{vehicleNo}",
    response_model=Vehicle,
    tags=["vehicles"],
    summary="One registered vehicle",
    responses=responses(*AUTH, 404),
)
def get_vehicle(platform: PlatformDep, token: EnterpriseOrOfficer, vehicleNo: str) -> Vehicle:
    row = store.vehicle(platform.db.reader(), plate=normalise_plate(vehicleNo))
    acting = _acting_for(token)
    if row is None or (acting is not None and row.owner_code not in acting):
        raise ApiError(404, "not_found", f"no registered vehicle {vehicleNo}")
    return _vehicle(row)
