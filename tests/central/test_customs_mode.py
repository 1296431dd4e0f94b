"""Production mode: statuses come from customs receipts (CEB622), through the lifecycle table."""

from __future__ import annotations

from pathlib import Path

import pytest

from central.ceb.documents import DocKind
from central.ceb.xml_out import receipts_xml
from testkit import factories
from testkit.central_server import run_central
from testkit.customs import inventory_receipt

pytestmark = pytest.mark.both_backends  # each test starts its own central: over both databases

XML = {"content-type": "application/xml"}


def test_customs_receipts_drive_the_status(tmp_path: Path) -> None:
    with run_central(tmp_path, mode="customs") as central:
        shop, officer = central.client("enterprise"), central.client("officer")
        s = factories.document_set(1, start=5)[0]
        for doc in s.documents:
            shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
        [detail] = officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}).json()
        clearance = detail["clearance"]
        assert clearance["status"] == "120"  # compared and accepted; customs decides the rest

        def receipt(status: str) -> bytes:
            return receipts_xml(
                DocKind.INVENTORY, [inventory_receipt(s, detail, status, "20240601120000000")]
            )

        steps = [("399", True), ("399", True), ("800", True), ("100", False), ("500", False), ("899", True)]
        for status, applied in steps:
            answer = officer.post("/api/v1/customs/receipts", content=receipt(status), headers=XML)
            assert answer.status_code == 200, answer.text
            assert answer.json()[0]["applied"] is applied, (status, answer.json())
        [detail] = officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}).json()
        assert [h["to_status"] for h in detail["history"]] == ["120", "399", "800", "899"]
        # receipts are an officer's business, not an enterprise's
        assert shop.post("/api/v1/customs/receipts", content=receipt("800"), headers=XML).status_code == 403
