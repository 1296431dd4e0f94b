"""The official sample messages (../shared/ceb/samples): each is taken, or refused for a stated reason."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from central.ceb.documents import DocKind, Inventory, Order
from central.ceb.xml_in import CebError, parse_message
from central.ceb.xml_out import message_xml

# message type -> number of documents (or receipts) central takes from the sample
ACCEPTED = {"CEB311": 6, "CEB411": 10, "CEB511": 6, "CEB621": 10, "CEB622": 10, "CEB623": 10, "CEB625": 10}
# receipts central itself sends, and messages outside its scope
REFUSED = ["CEB312", "CEB412", "CEB512", "CEB513", "CEB514", "CEB624", "CEB626", "CEB711", "CEB712"]


def sample(ceb_dir: Path, kind: str) -> bytes:
    return (ceb_dir / "samples" / f"{kind}Message.xml").read_bytes()


def test_the_tables_cover_every_sample(ceb_dir: Path) -> None:
    on_disk = {p.name.removesuffix("Message.xml") for p in (ceb_dir / "samples").glob("CEB*Message.xml")}
    assert on_disk == set(ACCEPTED) | set(REFUSED)


@pytest.mark.parametrize(("kind", "count"), sorted(ACCEPTED.items()))
def test_sample_is_accepted(ceb_dir: Path, kind: str, count: int) -> None:
    message = parse_message(sample(ceb_dir, kind))
    assert message.kind == kind
    assert message.version == "1.0"
    assert len(message.documents) + len(message.receipts) == count
    assert message.signed == (kind != "CEB622")


@pytest.mark.parametrize("kind", REFUSED)
def test_sample_outside_scope_is_refused(ceb_dir: Path, kind: str) -> None:
    with pytest.raises(CebError) as caught:
        parse_message(sample(ceb_dir, kind))
    assert caught.value.code == "unsupported_message"
    assert caught.value.reason.startswith(f"{kind} messages are not taken here (only CEB311, CEB411,")


def test_order_sample_values(ceb_dir: Path) -> None:
    """The BOM-prefixed, ceb:-prefixed sample: values, extras and empty elements as intended."""
    message = parse_message(sample(ceb_dir, "CEB311"))
    order = message.documents[0]
    assert isinstance(order, Order)
    assert order.orderNo == "order20160321116421002"
    assert order.acturalPaid == Decimal("19050")
    assert [row.gnum for row in order.orderList] == [1, 2]
    assert order.orderList[1].totalPrice == Decimal("12000")
    assert order.model_extra == {"batchNumbers": "20160317", "consigneeDistrict": "072750", "note": "test"}
    assert order.orderList[0].model_extra == {"itemDescribe": "v"}  # <note></note> is absent
    assert message.base_transfer == {
        "copCode": "1101180326",
        "copName": "物流企业",
        "dxpMode": "DXP",
        "dxpId": "EXP2016522002580001",
        "note": "test",
    }


def test_inventory_sample_empty_elements_mean_absent(ceb_dir: Path) -> None:
    inventory = parse_message(sample(ceb_dir, "CEB621")).documents[0]
    assert isinstance(inventory, Inventory)
    assert inventory.preNo is None and inventory.invtNo is None
    assert inventory.emsNo == "S1501I000164"
    assert inventory.tradeMode == "9610"


def test_customs_receipt_sample(ceb_dir: Path) -> None:
    message = parse_message(sample(ceb_dir, "CEB622"))
    assert message.documents == [] and message.base_transfer is None
    first = message.receipts[0]
    assert (first.copNo, first.preNo, first.returnStatus, first.returnTime) == (
        "cop2016032211000",
        "B20160512000001882",
        "1",
        "20160512102646001",
    )


KINDS = {layout: DocKind(layout) for layout in ("CEB311", "CEB411", "CEB511", "CEB621", "CEB623", "CEB625")}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_sample_documents_emit_again_schema_valid_and_equal(
    ceb_dir: Path, xsd: etree.XMLSchema, signature: bytes, kind: str
) -> None:
    """Parse, emit with message_xml, validate against the XSD, parse again: nothing lost on the way."""
    message = parse_message(sample(ceb_dir, kind))
    assert message.base_transfer is not None
    xml = message_xml(KINDS[kind], message.documents, message.base_transfer)
    root = etree.fromstring(xml)
    root.append(etree.fromstring(signature))
    assert xsd.validate(root), xsd.error_log
    assert parse_message(xml).documents == message.documents
