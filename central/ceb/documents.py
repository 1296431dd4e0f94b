"""The documents central takes in, as pydantic models with the standard's camelCase names.

XML and JSON intake both end here. Fields the comparison and the feed use are declared and typed;
every other official field is kept as an extra (so a document can be emitted again as XML), and
every field, declared or extra, is checked against the standard's rules (central/ceb/fields.py)
before the model is built. Money and weights are Decimal end to end.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from central.ceb.field_check import POSITIVE, check_fields
from central.ceb.fields import FIELDS

RETURN_TIME = re.compile(r"[0-9]{17}", re.ASCII)

# Validation context key: the caller has already run check_fields on every head and row (the XML
# reader does, to name the document in each problem), so the models need not run it again.
FIELDS_CHECKED = "ceb_fields_checked"


class DocKind(StrEnum):
    """Message type of a document the platform takes in (the CEB message number)."""

    ORDER = "CEB311"
    PAYMENT = "CEB411"
    WAYBILL = "CEB511"
    INVENTORY = "CEB621"
    CANCEL = "CEB623"
    REFUND = "CEB625"


class AppType(StrEnum):
    NEW = "1"
    CHANGE = "2"
    DELETE = "3"


# a decimal as the XSD writes it, not negative (the sign rule of field_check), XML space around it
NON_NEGATIVE_DECIMAL = r"^[ \t\r\n]*\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)[ \t\r\n]*$"


def _standard_schema(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """Say in the JSON schema what the standard's field rules (fields.FIELDS, field_check) refuse:
    a required text is at least its minimum length and not blank, a text at most its maximum, a
    count or line number at least 1, an amount never negative, a list of rows not empty. So a
    schema-valid document is not refused for an empty string or a gnum of 0 (outside finding G)."""
    entity = getattr(cls, "ENTITY", None)
    properties = schema.get("properties", {})
    for list_name in getattr(cls, "LISTS", {}):
        if list_name in properties:
            properties[list_name]["minItems"] = 1  # "needs at least one row"
    for name, rule in FIELDS.get(entity or "", {}).items():
        prop = properties.get(name)
        if prop is None:
            continue
        branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") not in (None, "null")]
        for branch in branches:
            if rule["kind"] == "str" and branch["type"] == "string":
                most = rule.get("length", rule.get("maxLength"))
                if most is not None:
                    branch["maxLength"] = most
                if rule["required"]:
                    branch["minLength"] = rule.get("length", rule.get("minLength", 1))
                    branch.setdefault("pattern", r"\S")
            elif rule["kind"] == "int" and branch["type"] == "integer":
                branch["minimum"] = 1 if name in POSITIVE else -(2**31)
                branch["maximum"] = 2**31 - 1
            elif rule["kind"] == "decimal" and branch["type"] == "number":
                branch["exclusiveMinimum" if name in POSITIVE else "minimum"] = 0
            elif rule["kind"] == "decimal" and branch["type"] == "string":
                branch["pattern"] = NON_NEGATIVE_DECIMAL


class _Entity(BaseModel):
    """A CEB entity (a head or a list row); `ENTITY` names its rules in fields.FIELDS."""

    model_config = ConfigDict(
        extra="allow", populate_by_name=True, coerce_numbers_to_str=True, json_schema_extra=_standard_schema
    )
    ENTITY: ClassVar[str]
    # child list fields and the entity their rows are checked as
    LISTS: ClassVar[dict[str, str]] = {}
    # values a JSON sender may leave out (XML senders must give them, as the standard says)
    DEFAULTS: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _standard_rules(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        data = {**cls.DEFAULTS, **data}
        if not (info.context or {}).get(FIELDS_CHECKED):
            problems = cls._rule_problems(data)
            if problems:
                raise ValueError("; ".join(problems))
        # empty strings mean "absent" in official messages
        return {k: (None if isinstance(v, str) and v.strip() == "" else v) for k, v in data.items()}

    @classmethod
    def _rule_problems(cls, data: dict[str, Any]) -> list[str]:
        head = {k: v for k, v in data.items() if k not in cls.LISTS and k != "docType"}
        problems = check_fields(cls.ENTITY, head)
        for list_name, entity in cls.LISTS.items():
            rows = data.get(list_name)
            if not isinstance(rows, list) or not rows:
                problems.append(f"{cls.ENTITY}: {list_name} needs at least one row")
                continue
            for i, row in enumerate(rows, start=1):
                if isinstance(row, BaseModel):
                    continue
                if not isinstance(row, dict):
                    problems.append(f"{list_name}[{i}]: must be an object")
                    continue
                problems += [f"{list_name}[{i}] {p}" for p in check_fields(entity, row)]
        return problems


Money = Annotated[Decimal, Field(max_digits=19, decimal_places=5)]


def _doc_type_required(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """`docType` picks the document kind (the union's discriminator): a sender must give it, though
    the models default it for documents built in code. And the standard's field rules."""
    _standard_schema(schema, cls)
    required = schema.setdefault("required", [])
    if "docType" in schema.get("properties", {}) and "docType" not in required:
        required.insert(0, "docType")


class _Document(_Entity):
    model_config = ConfigDict(
        extra="allow", populate_by_name=True, coerce_numbers_to_str=True, json_schema_extra=_doc_type_required
    )
    guid: str
    appType: AppType = AppType.NEW
    appTime: str
    appStatus: Literal["1", "2"] = "2"

    KIND: ClassVar[DocKind]
    DEFAULTS: ClassVar[dict[str, str]] = {"appType": "1", "appStatus": "2"}


class OrderItem(_Entity):
    ENTITY = "OrderList"
    gnum: int
    itemNo: str | None = None
    itemName: str
    gmodel: str
    barCode: str | None = None
    unit: str
    qty: Money
    price: Money
    totalPrice: Money
    currency: str
    country: str


class Order(_Document):
    """CEB311 electronic order (OrderHead + OrderList rows)."""

    ENTITY = "OrderHead"
    LISTS = {"orderList": "OrderList"}
    DEFAULTS = {"appType": "1", "appStatus": "2", "orderType": "I"}
    KIND = DocKind.ORDER
    docType: Literal["CEB311"] = "CEB311"
    orderType: str = "I"
    orderNo: str
    ebpCode: str
    ebpName: str
    ebcCode: str
    ebcName: str
    goodsValue: Money
    freight: Money
    discount: Money
    taxTotal: Money
    acturalPaid: Money
    currency: str
    buyerRegNo: str
    buyerName: str
    buyerTelephone: str
    buyerIdType: str
    buyerIdNumber: str
    payCode: str | None = None
    payName: str | None = None
    payTransactionId: str | None = None
    consignee: str
    consigneeTelephone: str
    consigneeAddress: str
    orderList: list[OrderItem]


class Payment(_Document):
    """CEB411 payment record."""

    ENTITY = "PaymentHead"
    KIND = DocKind.PAYMENT
    docType: Literal["CEB411"] = "CEB411"
    payCode: str
    payName: str
    payTransactionId: str
    orderNo: str
    ebpCode: str
    ebpName: str
    payerIdType: str
    payerIdNumber: str
    payerName: str
    amountPaid: Money
    currency: str
    payTime: str


class Waybill(_Document):
    """CEB511 logistics waybill."""

    ENTITY = "LogisticsHead"
    KIND = DocKind.WAYBILL
    docType: Literal["CEB511"] = "CEB511"
    logisticsCode: str
    logisticsName: str
    logisticsNo: str
    billNo: str | None = None
    orderNo: str
    freight: Money | None = None
    insuredFee: Money | None = None
    currency: str
    weight: Money
    packNo: int
    goodsInfo: str | None = None
    consignee: str
    consigneeAddress: str
    consigneeTelephone: str


class InventoryItem(_Entity):
    ENTITY = "InventoryList"
    gnum: int
    itemRecordNo: str | None = None
    itemNo: str | None = None
    itemName: str | None = None
    gcode: str
    gname: str
    gmodel: str
    country: str
    currency: str
    qty: Money
    unit: str
    qty1: Money
    unit1: str
    price: Money
    totalPrice: Money


class Inventory(_Document):
    """CEB621 import inventory declaration: what customs clears, one per parcel."""

    ENTITY = "InventoryHead"
    LISTS = {"inventoryList": "InventoryList"}
    DEFAULTS = {"appType": "1", "appStatus": "2", "ieFlag": "I"}
    KIND = DocKind.INVENTORY
    docType: Literal["CEB621"] = "CEB621"
    orderNo: str
    ebpCode: str
    ebpName: str
    ebcCode: str
    ebcName: str
    logisticsNo: str
    logisticsCode: str
    logisticsName: str
    copNo: str | None = None
    preNo: str | None = None
    assureCode: str
    emsNo: str | None = None
    invtNo: str | None = None
    ieFlag: str = "I"
    declTime: str
    customsCode: str
    portCode: str
    buyerIdType: str
    buyerIdNumber: str
    buyerName: str
    buyerTelephone: str
    consigneeAddress: str
    agentCode: str
    agentName: str
    areaCode: str | None = None
    tradeMode: str
    trafMode: str
    country: str
    freight: Money
    insuredFee: Money
    currency: str
    packNo: int
    grossWeight: Money
    netWeight: Money
    inventoryList: list[InventoryItem]


class _InventoryRequest(_Document):
    customsCode: str
    orderNo: str
    ebpCode: str
    ebpName: str
    ebcCode: str
    ebcName: str
    logisticsNo: str
    logisticsCode: str
    logisticsName: str
    copNo: str | None = None
    preNo: str | None = None
    invtNo: str
    buyerIdType: str
    buyerIdNumber: str
    buyerName: str
    buyerTelephone: str
    agentCode: str
    agentName: str
    reason: str


class Cancellation(_InventoryRequest):
    """CEB623 inventory cancellation (撤销申请单)."""

    ENTITY = "InvtCancel"
    KIND = DocKind.CANCEL
    docType: Literal["CEB623"] = "CEB623"


class RefundItem(_Entity):
    ENTITY = "InvtRefundList"
    gnum: int
    gcode: str
    gname: str
    qty: Money
    unit: str


class Refund(_InventoryRequest):
    """CEB625 return request (退货申请单)."""

    ENTITY = "InvtRefundHead"
    LISTS = {"invtRefundList": "InvtRefundList"}
    KIND = DocKind.REFUND
    docType: Literal["CEB625"] = "CEB625"
    invtRefundList: list[RefundItem]


Document = Annotated[
    Order | Payment | Waybill | Inventory | Cancellation | Refund, Field(discriminator="docType")
]
DOCUMENT_CLASSES: dict[DocKind, type[_Document]] = {
    cls.KIND: cls for cls in (Order, Payment, Waybill, Inventory, Cancellation, Refund)
}


class CustomsReceipt(_Entity):
    """CEB622 InventoryReturn: a customs receipt setting an inventory's status (production mode)."""

    ENTITY = "InventoryReturn"
    guid: str
    customsCode: str | None = None
    ebpCode: str | None = None
    ebcCode: str | None = None
    agentCode: str | None = None
    copNo: str
    preNo: str
    invtNo: str | None = None
    returnStatus: str
    returnTime: str
    returnInfo: str

    @field_validator("returnTime")
    @classmethod
    def _a_real_moment(cls, value: str) -> str:
        """yyyyMMddHHmmssfff in ASCII digits, and a moment that exists: receipts apply in this order,
        so a month 13 or a full-width digit would put one out of order for good."""
        if not RETURN_TIME.fullmatch(value):
            raise ValueError(f"returnTime {value[:40]!r} is not yyyyMMddHHmmssfff")
        try:
            datetime.strptime(value[:14], "%Y%m%d%H%M%S")
        except ValueError:
            raise ValueError(f"returnTime {value!r} is not a real date and time") from None
        return value


class Receipt(BaseModel):
    """A receipt in the standard's form (CEB312/412/512/622 bodies share these fields)."""

    kind: DocKind = Field(description="message type of the document this receipt answers")
    guid: str = Field(description="guid of the document")
    key: dict[str, str] = Field(description="the document's key fields, as in the receipt XML")
    returnStatus: str
    returnTime: str = Field(pattern=r"^\d{17}$", description="yyyyMMddHHmmssfff")
    returnInfo: str
