"""testkit/factories.py keeps its promise: each parcel's documents agree on every comparison rule."""

from __future__ import annotations

import pytest

from central.ceb.documents import DocKind
from testkit import factories
from testkit.factories import DocumentSet


@pytest.fixture(params=[1, 7, 99_999])
def parcel(request: pytest.FixtureRequest) -> DocumentSet:
    return factories.document_set(1, start=request.param)[0]


def test_keys_are_shared(parcel: DocumentSet) -> None:
    o, p, w, i = parcel.documents
    assert o.orderNo == p.orderNo == w.orderNo == i.orderNo
    assert o.ebpCode == p.ebpCode == i.ebpCode
    assert o.ebcCode == i.ebcCode
    assert o.payTransactionId == p.payTransactionId and o.payCode == p.payCode
    assert (w.logisticsCode, w.logisticsNo) == (i.logisticsCode, i.logisticsNo)


def test_amounts_add_up(parcel: DocumentSet) -> None:
    o = parcel.order
    assert o.acturalPaid == o.goodsValue + o.freight + o.taxTotal - o.discount == parcel.payment.amountPaid
    assert o.goodsValue == sum(row.totalPrice for row in o.orderList)


def test_buyer_is_payer_and_consignee_agrees(parcel: DocumentSet) -> None:
    o, p, w, i = parcel.documents
    assert o.buyerIdNumber == p.payerIdNumber == i.buyerIdNumber
    assert o.buyerName == p.payerName == i.buyerName
    assert (o.consignee, o.consigneeTelephone, o.consigneeAddress) == (
        w.consignee,
        w.consigneeTelephone,
        w.consigneeAddress,
    )


def test_lines_match_one_to_one(parcel: DocumentSet) -> None:
    order_rows = {row.gnum: row for row in parcel.order.orderList}
    inventory_rows = {row.gnum: row for row in parcel.inventory.inventoryList}
    assert order_rows.keys() == inventory_rows.keys()
    for gnum, row in inventory_rows.items():
        assert (row.gname, row.qty, row.price) == (
            order_rows[gnum].itemName,
            order_rows[gnum].qty,
            order_rows[gnum].price,
        )


def test_weights_and_bonded_fields(parcel: DocumentSet) -> None:
    i = parcel.inventory
    assert 0 < i.netWeight <= i.grossWeight == parcel.waybill.weight
    assert i.tradeMode == "1210" and i.emsNo == factories.DEFAULT_EMS_NO and i.areaCode
    assert all(row.itemRecordNo for row in i.inventoryList)


def test_parcels_share_no_keys() -> None:
    sets = factories.document_set(5)
    assert len({s.order.orderNo for s in sets}) == 5
    assert len({s.waybill.logisticsNo for s in sets}) == 5
    assert len({s.payment.payTransactionId for s in sets}) == 5
    assert len({doc.guid for s in sets for doc in s.documents}) == 20


def test_park_is_a_parameter() -> None:
    [s] = factories.document_set(1, ems_no=factories.OTHER_EMS_NO, area_code=factories.OTHER_AREA_CODE)
    assert (s.inventory.emsNo, s.inventory.areaCode) == (factories.OTHER_EMS_NO, factories.OTHER_AREA_CODE)


def test_factories_are_deterministic() -> None:
    assert factories.document_set(2) == factories.document_set(2)


def test_overrides_replace_fields_and_still_validate() -> None:
    assert factories.order(3, note="x").model_extra == {"note": "x"}
    assert factories.payment(3, amountPaid="1.00").amountPaid == 1
    with pytest.raises(ValueError, match=r"OrderHead\.orderNo: required field is missing"):
        factories.order(orderNo="")


def test_requests_and_receipts_refer_to_the_parcel() -> None:
    cancel, refund, inventory = factories.cancellation(4), factories.refund(4), factories.inventory(4)
    for request in (cancel, refund):
        assert (request.orderNo, request.logisticsNo, request.copNo) == (
            inventory.orderNo,
            inventory.logisticsNo,
            inventory.copNo,
        )
        assert request.invtNo == factories.invt_no(4)
    assert [row.gnum for row in refund.invtRefundList] == [row.gnum for row in inventory.inventoryList]
    assert factories.receipt(DocKind.ORDER, 4).guid == factories.order(4).guid
    assert factories.receipt(DocKind.INVENTORY, 4).key["preNo"] == factories.pre_no(4)
