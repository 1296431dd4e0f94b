"""Parcels cleared the way production clears them: the documents in one message (120), then customs'
CEB622 receipts 399 and 800 in two more, so each parcel's feed holds three versions (one per
transaction; central publishes the state each transaction commits). For a central in customs mode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from central.ceb.documents import DocKind, Receipt
from central.ceb.xml_out import receipts_xml
from testkit import factories

XML = {"content-type": "application/xml"}


def declare_and_clear(central: Any, n: int, start: int = 1, **kw: Any) -> list[factories.DocumentSet]:
    sets = factories.document_set(n, start=start, **kw)
    batch = {"documents": [d.model_dump(mode="json") for s in sets for d in s.documents]}
    answer = central.client("enterprise").post("/api/v1/documents", json=batch)
    answer.raise_for_status()
    accepted = [
        r
        for r in answer.json()["receipts"]
        if r["kind"] == DocKind.INVENTORY.value and r["returnStatus"] == "120"
    ]
    assert len(accepted) == n, answer.text
    moment = datetime.now(UTC)
    for step, status in enumerate(("399", "800"), start=1):
        at = (moment + timedelta(seconds=step)).strftime("%Y%m%d%H%M%S%f")[:17]
        receipts = [
            Receipt(
                kind=DocKind.INVENTORY,
                guid=r["guid"],
                key=r["key"],
                returnStatus=status,
                returnTime=at,
                returnInfo=f"customs {status}",
            )
            for r in accepted
        ]
        sent = central.client("officer").post(
            "/api/v1/customs/receipts", content=receipts_xml(DocKind.INVENTORY, receipts), headers=XML
        )
        sent.raise_for_status()
        assert all(o["applied"] for o in sent.json()), sent.text
    return sets


def inventory_receipt(
    s: factories.DocumentSet, detail: dict[str, Any], status: str, at: str, **key: str
) -> Receipt:
    """Customs' CEB622 for the set's inventory at `status`, returnTime `at`, keyed as central's
    clearance `detail` (GET /api/v1/clearances) names it; `key` overrides fields of the key."""
    clearance = detail["clearance"]
    return Receipt(
        kind=DocKind.INVENTORY,
        guid=s.inventory.guid,
        returnStatus=status,
        returnTime=at,
        returnInfo=f"customs {status}",
        key={
            "customsCode": factories.CUSTOMS_CODE,
            "ebpCode": clearance["ebpCode"],
            "ebcCode": clearance["ebcCode"],
            "agentCode": factories.AGENT_CODE,
            "copNo": s.inventory.copNo,
            "preNo": detail["documents"]["inventory"]["preNo"],
            "invtNo": clearance["invtNo"],
        }
        | key,
    )
