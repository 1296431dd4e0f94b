"""The three-document comparison (三单对碰, DESIGN §3.2): order, payment and waybill against the inventory.

Customs accepts an inventory only when the platform's order, the payment company's record and the
carrier's waybill tell the same story. Each rule is one pure function over a `DocumentSet` that
returns every `Failure` it finds (never stopping at the first), so a sender learns everything that
is wrong in one receipt. `compare` runs them all in `RULES` order.

Uniqueness (a logisticsNo once per carrier within six months, an orderNo once per platform) needs
the database, so `rule_uniqueness` takes the counts the caller looked up and is not in `RULES`;
add its failures with `ComparisonResult.plus`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from central.ceb.documents import Inventory, InventoryItem, Order, OrderItem, Payment, Waybill

RETURN_INFO_MAX: Final = 1000  # returnInfo is C..1000 in every receipt
ABSENT: Final = "(absent)"
BONDED_IMPORT: Final = "1210"
_MONEY_QUANTUM: Final = Decimal("0.00001")  # N19,5
_VALUE_CLIP: Final = 80
_MIN_LIMIT: Final = 40


class Failure(BaseModel):
    """One failed check: the rule, the field it is about and every value that took part."""

    model_config = ConfigDict(frozen=True)

    rule: str
    field: str
    values: dict[str, str]
    message: str


class WeightTolerance(BaseModel):
    """How far the carrier's weighed weight may be from the declared grossWeight.

    The allowance is the larger of an absolute amount (scales are coarse for light parcels) and a
    percentage of grossWeight (packaging varies with size).
    """

    model_config = ConfigDict(frozen=True)

    absolute_kg: Decimal = Field(default=Decimal("0.1"), ge=0)
    percent: Decimal = Field(default=Decimal("5"), ge=0)

    def allowed(self, gross_weight: Decimal) -> Decimal:
        """The largest difference in kg accepted for a parcel declared at `gross_weight`."""
        return max(self.absolute_kg, gross_weight * self.percent / 100)


DEFAULT_WEIGHT_TOLERANCE: Final = WeightTolerance()


@dataclass(frozen=True, slots=True)
class DocumentSet:
    """The four documents of one parcel and the weight tolerance they are compared under.

    The tolerance travels with the set so that every rule has the same signature and `RULES` can be
    run (and documented) as a plain sequence.
    """

    order: Order
    payment: Payment
    waybill: Waybill
    inventory: Inventory
    weight_tolerance: WeightTolerance = DEFAULT_WEIGHT_TOLERANCE


Rule = Callable[[DocumentSet], list[Failure]]


class ComparisonResult(BaseModel):
    """Every failure of one comparison, in rule order; `ok` when there are none."""

    model_config = ConfigDict(frozen=True)

    failures: tuple[Failure, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failed_rules(self) -> list[str]:
        """Names of the rules that failed, each once, in order."""
        return list(dict.fromkeys(f.rule for f in self.failures))

    def plus(self, failures: Iterable[Failure]) -> ComparisonResult:
        """This result with more failures appended (e.g. from `rule_uniqueness`)."""
        return ComparisonResult(failures=(*self.failures, *failures))

    def return_info(self, limit: int = RETURN_INFO_MAX) -> str:
        """A compact line naming every failed rule, field and value, at most `limit` characters.

        Failures that do not fit are counted in a "…(+N more)" tail rather than cut mid-value; long
        values are clipped, and only a first failure too long on its own is cut.
        """
        if self.ok:
            return "comparison passed"
        return _fit([_render(f) for f in self.failures], limit)


# --- rendering -------------------------------------------------------------------------------------


def _text(value: object) -> str:
    """A value as it appears in a Failure: Decimals without exponent, None as "(absent)"."""
    if value is None:
        return ABSENT
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _clip(text: str) -> str:
    return text if len(text) <= _VALUE_CLIP else text[: _VALUE_CLIP - 1] + "…"


def _render(failure: Failure) -> str:
    values = ", ".join(f"{k}={_clip(v)}" for k, v in failure.values.items())
    return f"{failure.rule}.{failure.field}({values})"


def _fit(parts: list[str], limit: int) -> str:
    """Join `parts` with "; " within `limit` chars, ending in "…(+N more)" for those left out."""
    full = "; ".join(parts)
    if len(full) <= limit:
        return full
    if limit < _MIN_LIMIT:
        raise ValueError(f"limit must be at least {_MIN_LIMIT} characters")
    room = limit - len(f" …(+{len(parts)} more)")
    shown: list[str] = []
    for part in parts:
        if len("; ".join([*shown, part])) > room:
            break
        shown.append(part)
    if not shown:  # a single oversized failure: cut it rather than show nothing
        shown = [parts[0][: room - 1] + "…"]
    rest = len(parts) - len(shown)
    text = "; ".join(shown)
    return f"{text} …(+{rest} more)" if rest else text


# --- helpers ---------------------------------------------------------------------------------------


def _disagree(
    rule: str,
    field: str,
    values: dict[str, object],
    message: str,
    *,
    norm: Callable[[str], str] | None = None,
    context: dict[str, str] | None = None,
) -> list[Failure]:
    """One Failure when the values (normalised by `norm` if given) are not all equal, else none.

    `context` entries (e.g. which gnum) are shown first in the failure but take no part in the check.
    """
    seen = {norm(v) if norm is not None and isinstance(v, str) else v for v in values.values()}
    if len(seen) <= 1:
        return []
    shown = {**(context or {}), **{k: _text(v) for k, v in values.items()}}
    return [Failure(rule=rule, field=field, values=shown, message=message)]


def _no_whitespace(text: str) -> str:
    return "".join(text.split())


def _single_spaced(text: str) -> str:
    return " ".join(text.split())


def _money(value: Decimal) -> Decimal:
    return value.quantize(_MONEY_QUANTUM)


def _gnums(numbers: Iterable[int]) -> str:
    return ",".join(str(n) for n in sorted(numbers))


# --- the rules -------------------------------------------------------------------------------------


def rule_keys(docs: DocumentSet) -> list[Failure]:
    """The four documents name the same parcel: shared orderNo, platform, company, carrier, payment."""
    o, p, w, i = docs.order, docs.payment, docs.waybill, docs.inventory
    checks: list[tuple[str, dict[str, object]]] = [
        (
            "orderNo",
            {
                "order.orderNo": o.orderNo,
                "payment.orderNo": p.orderNo,
                "inventory.orderNo": i.orderNo,
                "waybill.orderNo": w.orderNo,
            },
        ),
        (
            "ebpCode",
            {"order.ebpCode": o.ebpCode, "payment.ebpCode": p.ebpCode, "inventory.ebpCode": i.ebpCode},
        ),
        ("ebcCode", {"order.ebcCode": o.ebcCode, "inventory.ebcCode": i.ebcCode}),
        (
            "logisticsCode",
            {"waybill.logisticsCode": w.logisticsCode, "inventory.logisticsCode": i.logisticsCode},
        ),
        ("logisticsNo", {"waybill.logisticsNo": w.logisticsNo, "inventory.logisticsNo": i.logisticsNo}),
        (
            "payTransactionId",
            {"order.payTransactionId": o.payTransactionId, "payment.payTransactionId": p.payTransactionId},
        ),
    ]
    return [
        failure
        for field, values in checks
        for failure in _disagree("keys", field, values, f"{field} differs between the documents")
    ]


def rule_amount(docs: DocumentSet) -> list[Failure]:
    """The order adds up, and the buyer paid what the order says (compared to the cent and beyond)."""
    o, p = docs.order, docs.payment
    expected = o.goodsValue + o.freight + o.taxTotal - o.discount
    failures = []
    if _money(o.acturalPaid) != _money(expected):
        failures.append(
            Failure(
                rule="amount",
                field="acturalPaid",
                values={
                    "order.acturalPaid": _text(o.acturalPaid),
                    "goodsValue+freight+taxTotal-discount": _text(expected),
                },
                message=(
                    f"acturalPaid {_text(o.acturalPaid)} is not goodsValue {_text(o.goodsValue)} + freight "
                    f"{_text(o.freight)} + taxTotal {_text(o.taxTotal)} − discount {_text(o.discount)}"
                ),
            )
        )
    if _money(o.acturalPaid) != _money(p.amountPaid):
        failures.append(
            Failure(
                rule="amount",
                field="amountPaid",
                values={"order.acturalPaid": _text(o.acturalPaid), "payment.amountPaid": _text(p.amountPaid)},
                message="the payment does not match the order's acturalPaid",
            )
        )
    return failures


def rule_buyer_payer(docs: DocumentSet) -> list[Failure]:
    """Whoever ordered paid and is declared: one person across order, payment and inventory."""
    o, p, i = docs.order, docs.payment, docs.inventory
    return [
        *_disagree(
            "buyer_payer",
            "buyerIdNumber",
            {
                "order.buyerIdNumber": o.buyerIdNumber,
                "payment.payerIdNumber": p.payerIdNumber,
                "inventory.buyerIdNumber": i.buyerIdNumber,
            },
            "buyer and payer ID numbers differ",
        ),
        *_disagree(
            "buyer_payer",
            "buyerName",
            {
                "order.buyerName": o.buyerName,
                "payment.payerName": p.payerName,
                "inventory.buyerName": i.buyerName,
            },
            "buyer and payer names differ",
        ),
    ]


def rule_consignee(docs: DocumentSet) -> list[Failure]:
    """The carrier delivers to whom the order says; whitespace is ignored since senders format freely."""
    o, w = docs.order, docs.waybill
    return [
        failure
        for field in ("consignee", "consigneeTelephone", "consigneeAddress")
        for failure in _disagree(
            "consignee",
            field,
            {f"order.{field}": getattr(o, field), f"waybill.{field}": getattr(w, field)},
            f"{field} differs between order and waybill",
            norm=_no_whitespace,
        )
    ]


def rule_lines(docs: DocumentSet) -> list[Failure]:
    """Each inventory row declares exactly one order row (by gnum) with the same goods, qty and price."""
    order_rows, inv_rows = docs.order.orderList, docs.inventory.inventoryList
    failures = _gnum_pairing(order_rows, inv_rows)
    by_gnum = {row.gnum: row for row in reversed(order_rows)}  # first row wins on duplicates
    seen: set[int] = set()
    for row in inv_rows:
        if row.gnum in by_gnum and row.gnum not in seen:
            seen.add(row.gnum)
            failures += _row_differences(by_gnum[row.gnum], row)
    return failures


def _gnum_pairing(order_rows: list[OrderItem], inv_rows: list[InventoryItem]) -> list[Failure]:
    order_count = Counter(row.gnum for row in order_rows)
    inv_count = Counter(row.gnum for row in inv_rows)
    problems = [
        *(f"order gnum {g} repeats" for g in sorted(order_count) if order_count[g] > 1),
        *(f"inventory gnum {g} repeats" for g in sorted(inv_count) if inv_count[g] > 1),
        *(f"inventory gnum {g} has no order row" for g in sorted(inv_count.keys() - order_count.keys())),
        *(f"order gnum {g} has no inventory row" for g in sorted(order_count.keys() - inv_count.keys())),
    ]
    if not problems:
        return []
    values = {"order.gnum": _gnums(order_count.elements()), "inventory.gnum": _gnums(inv_count.elements())}
    return [Failure(rule="lines", field="gnum", values=values, message="; ".join(problems))]


def _row_differences(order_row: OrderItem, inv_row: InventoryItem) -> list[Failure]:
    gnum = str(inv_row.gnum)
    pairs: list[tuple[str, str, object, object]] = [
        ("gname", "itemName", order_row.itemName, inv_row.gname),
        ("qty", "qty", order_row.qty, inv_row.qty),
        ("price", "price", order_row.price, inv_row.price),
    ]
    return [
        failure
        for inv_field, order_field, order_value, inv_value in pairs
        for failure in _disagree(
            "lines",
            inv_field,
            {f"order.{order_field}": order_value, f"inventory.{inv_field}": inv_value},
            f"gnum {gnum}: inventory {inv_field} differs from the order's {order_field}",
            norm=_single_spaced,
            context={"gnum": gnum},
        )
    ]


def rule_weights(docs: DocumentSet) -> list[Failure]:
    """Declared weights are positive and consistent, and the carrier's scale roughly agrees."""
    inv, waybill, tolerance = docs.inventory, docs.waybill, docs.weight_tolerance
    gross, net = inv.grossWeight, inv.netWeight
    failures = []
    if gross <= 0:
        failures.append(
            _weight_failure("grossWeight", {"inventory.grossWeight": gross}, "grossWeight must be above 0")
        )
    if net <= 0:
        failures.append(
            _weight_failure("netWeight", {"inventory.netWeight": net}, "netWeight must be above 0")
        )
    if net > gross:
        values = {"inventory.netWeight": net, "inventory.grossWeight": gross}
        failures.append(_weight_failure("netWeight", values, "netWeight exceeds grossWeight"))
    allowed = tolerance.allowed(gross)
    if abs(waybill.weight - gross) > allowed:
        values = {
            "waybill.weight": waybill.weight,
            "inventory.grossWeight": gross,
            "allowed difference": allowed,
        }
        failures.append(_weight_failure("weight", values, "the waybill weight is too far from grossWeight"))
    return failures


def _weight_failure(field: str, values: dict[str, Decimal], message: str) -> Failure:
    return Failure(
        rule="weights", field=field, values={k: _text(v) for k, v in values.items()}, message=message
    )


def rule_bonded_fields(docs: DocumentSet) -> list[Failure]:
    """A bonded import (1210) must name its account book, area and each row's goods record."""
    inv = docs.inventory
    if inv.tradeMode != BONDED_IMPORT:
        return []
    failures = [
        Failure(
            rule="bonded_fields",
            field=field,
            values={"inventory.tradeMode": inv.tradeMode, f"inventory.{field}": ABSENT},
            message=f"tradeMode 1210 requires {field}",
        )
        for field in ("emsNo", "areaCode")
        if getattr(inv, field) is None
    ]
    missing = [row.gnum for row in inv.inventoryList if row.itemRecordNo is None]
    if missing:
        failures.append(
            Failure(
                rule="bonded_fields",
                field="itemRecordNo",
                values={"inventory.tradeMode": inv.tradeMode, "gnum": _gnums(missing)},
                message="tradeMode 1210 requires itemRecordNo on every row",
            )
        )
    return failures


def rule_uniqueness(
    inventory: Inventory,
    *,
    other_inventories_with_same_logistics_no: int,
    other_orders_with_same_order_no: int,
) -> list[Failure]:
    """logisticsNo once per carrier within six months; orderNo once per platform.

    The caller counts the *other* records (this set's own earlier versions excluded) in its store.
    """
    if other_inventories_with_same_logistics_no < 0 or other_orders_with_same_order_no < 0:
        raise ValueError("counts cannot be negative")
    failures = []
    if other_inventories_with_same_logistics_no:
        values = {
            "inventory.logisticsCode": inventory.logisticsCode,
            "inventory.logisticsNo": inventory.logisticsNo,
            "other inventories": str(other_inventories_with_same_logistics_no),
        }
        message = "logisticsNo already used by this carrier within six months"
        failures.append(Failure(rule="uniqueness", field="logisticsNo", values=values, message=message))
    if other_orders_with_same_order_no:
        values = {
            "inventory.ebpCode": inventory.ebpCode,
            "inventory.orderNo": inventory.orderNo,
            "other orders": str(other_orders_with_same_order_no),
        }
        message = "orderNo already used on this platform"
        failures.append(Failure(rule="uniqueness", field="orderNo", values=values, message=message))
    return failures


RULES: Final[tuple[Rule, ...]] = (
    rule_keys,
    rule_amount,
    rule_buyer_payer,
    rule_consignee,
    rule_lines,
    rule_weights,
    rule_bonded_fields,
)
"""The document rules in the order `compare` runs and reports them (uniqueness is separate)."""


def compare(
    order: Order,
    payment: Payment,
    waybill: Waybill,
    inventory: Inventory,
    *,
    weight_tolerance: WeightTolerance = DEFAULT_WEIGHT_TOLERANCE,
) -> ComparisonResult:
    """Run every rule in `RULES` over one parcel's documents and collect all failures."""
    docs = DocumentSet(order, payment, waybill, inventory, weight_tolerance)
    return ComparisonResult(failures=tuple(failure for rule in RULES for failure in rule(docs)))
