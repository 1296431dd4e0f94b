"""Document intake (CEB XML and JSON) and receipts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, Discriminator, Field, Tag
from starlette.concurrency import run_in_threadpool

from central import declarants
from central.api.deps import Enterprise, EnterpriseOrOfficer, PlatformDep
from central.api.errors import AUTH, ApiError, responses
from central.auth import Role
from central.ceb.documents import Document, Receipt
from central.ceb.xml_in import CebError, parse_message
from central.ceb.xml_out import receipts_xml
from central.declarants import AnyDocument
from central.intake import IntakeResult, submit
from central.metrics import DOCUMENTS
from central.platform import Platform
from central.receipts import as_receipt
from central.store import documents as dstore
from central.store.parks import TokenRow
from kernel.timefmt import utc_now

router = APIRouter(prefix="/api/v1", tags=["documents"])

XML_TYPES = ("application/xml", "text/xml")


class DocumentBatch(BaseModel):
    documents: list[Document] = Field(min_length=1, max_length=1000)


def _body_kind(value: Any) -> str:
    """A body with `documents` is a batch, anything else one document: so a refused single document
    is answered with its own problems, not led by the batch's "documents: Field required"."""
    if isinstance(value, dict):
        return "batch" if "documents" in value else "document"
    return "batch" if isinstance(value, DocumentBatch) else "document"


DocumentsBody = Annotated[
    Annotated[DocumentBatch, Tag("batch")] | Annotated[Document, Tag("document")],
    Discriminator(_body_kind),
]


def _submit(token: TokenRow, platform: Platform, documents: Sequence[AnyDocument]) -> IntakeResult:
    """Intake in the token's name. An enterprise token acts only for its enterprise codes: a
    document, or a change of one stored, declared by another enterprise is 403 (an admin token,
    which may do everything, is bound to no enterprise)."""
    acting_for = (token.enterprise_codes or frozenset()) if token.role == Role.ENTERPRISE else None
    try:
        result = submit(
            platform, list(documents), actor=f"token:{token.token_id}", now=utc_now(), acting_for=acting_for
        )
    except declarants.NotTheirs as exc:
        DOCUMENTS.labels(kind="message", result="forbidden").inc()
        raise ApiError(403, "forbidden", str(exc)) from exc
    _count(result, len(documents))
    return result


def _count(result: IntakeResult, documents: int) -> None:
    for r in result.receipts[:documents]:
        DOCUMENTS.labels(kind=r.kind.value, result="refused" if r.returnStatus == "100" else "accepted").inc()


@router.post(
    "/documents",
    response_model=IntakeResult,
    summary="Submit documents as JSON (one, or a batch of up to 1,000)",
    description="Same camelCase field names as the CEB XML; `docType` says which document "
    "(CEB311 order, CEB411 payment, CEB511 waybill, CEB621 inventory, CEB623 cancellation, "
    "CEB625 return). Each document gets a receipt; inventories also get one per status change.",
    responses=responses(400, *AUTH, 413),
)
def post_documents(
    platform: PlatformDep, token: Enterprise, body: Annotated[DocumentsBody, Body()]
) -> IntakeResult:
    docs = body.documents if isinstance(body, DocumentBatch) else [body]
    return _submit(token, platform, docs)


async def read_xml(request: Request) -> bytes:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in XML_TYPES:
        raise ApiError(415, "unsupported_media_type", f"send CEB messages as application/xml, not {ctype!r}")
    return await request.body()


XML_BODY = {
    "requestBody": {"required": True, "content": {t: {"schema": {"type": "string"}} for t in XML_TYPES}}
}


@router.post(
    "/ceb/messages",
    response_model=IntakeResult,
    summary="Submit one CEB XML message (CEB311/411/511/621/623/625, up to 100 documents)",
    description="The message is taken whole or refused whole: a structural or field-rule problem "
    "anywhere refuses it with 400 naming the document and field. Customs receipts (CEB622) go to "
    "/api/v1/customs/receipts.",
    responses=responses(400, *AUTH, 413, 415),
    openapi_extra=XML_BODY,
)
async def post_ceb_message(platform: PlatformDep, token: Enterprise, request: Request) -> IntakeResult:
    data = await read_xml(request)
    try:
        message = parse_message(data)
    except CebError as exc:
        DOCUMENTS.labels(kind="message", result="malformed").inc()
        raise ApiError(400, exc.code, exc.reason) from exc
    if message.kind == "CEB622":
        raise ApiError(400, "unsupported_message", "CEB622 customs receipts go to /api/v1/customs/receipts")
    return await run_in_threadpool(_submit, token, platform, message.documents)


@router.get(
    "/documents/{guid}/receipts",
    response_model=list[Receipt],
    summary="Receipts of a document, by its guid, as JSON or as CEB312/412/512/622/624/626 XML",
    responses={**responses(*AUTH, 404, 409), 200: {"content": {"application/xml": {}}}},
)
def get_receipts(
    platform: PlatformDep,
    token: EnterpriseOrOfficer,
    guid: str,
    format: Annotated[str, Query(pattern="^(json|xml)$", description="json or xml")] = "json",
) -> list[Receipt] | Response:
    rows = dstore.receipts_for_guid(platform.db, guid=guid)
    if not rows:
        raise ApiError(404, "not_found", f"no receipts for guid {guid}")
    if token.role == Role.ENTERPRISE and not declarants.may_read(rows[0].key_fields, token.enterprise_codes):
        raise ApiError(
            403, "forbidden", f"the document of guid {guid} is not one this token's enterprises declared"
        )
    receipts = [as_receipt(r) for r in rows]
    if format == "json":
        return receipts
    kind = receipts[0].kind
    try:
        body = receipts_xml(kind, [r for r in receipts if r.kind == kind])
    except ValueError as exc:  # e.g. a refused cancellation of an unknown inventory has no preNo
        raise ApiError(409, "not_expressible", f"these receipts have no CEB XML form: {exc}") from exc
    return Response(body, media_type="application/xml")
