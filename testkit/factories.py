"""Test documents: the simulated enterprises' declarations (firmware_sim/declarations.py), as
central's models.

Tests import this module as `from testkit import factories`; it is the same code the demo uses. The
simulator builds each document in its HTTP (JSON) form; here each is validated into the model
central's intake would make of it, so tests can read and change fields as attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central.ceb.documents import Cancellation, DocKind, Inventory, Order, Payment, Receipt, Refund, Waybill
from firmware_sim import declarations as _sim
from firmware_sim.declarations import *  # noqa: F403
from firmware_sim.declarations import _parcel_keys, _request_fields  # noqa: F401
from kernel.wire import FeedRecord, sign_record


def feed_record(key: Ed25519PrivateKey | None = None, **overrides: Any) -> FeedRecord:
    """One clearance as the feed carries it (released, 0.800 kg), signed with `key` if given."""
    fields: dict[str, Any] = {
        "seq": 1,
        "park_id": "P1",
        "invtNo": "46012025I000000001",
        "orderNo": "ORD000000001",
        "ebpCode": "4601000001",
        "ebcCode": "4601000002",
        "logisticsCode": "4601000003",
        "logisticsNo": "SF0000000001",
        "grossWeight": Decimal("0.800"),
        "netWeight": Decimal("0.600"),
        "goods": "Vitamin C tablets × 2",
        "status": "800",
        "cancelled": False,
        "version": 1,
        "updated_at": datetime.now(UTC),
    }
    record = FeedRecord(**(fields | overrides))
    return sign_record(record, key) if key is not None else record


def order(seq: int = 1, **kw: Any) -> Order:
    return Order.model_validate(_sim.order(seq, **kw))


def payment(seq: int = 1, **kw: Any) -> Payment:
    return Payment.model_validate(_sim.payment(seq, **kw))


def waybill(seq: int = 1, **kw: Any) -> Waybill:
    return Waybill.model_validate(_sim.waybill(seq, **kw))


def inventory(seq: int = 1, **kw: Any) -> Inventory:
    return Inventory.model_validate(_sim.inventory(seq, **kw))


def cancellation(seq: int = 1, **kw: Any) -> Cancellation:
    return Cancellation.model_validate(_sim.cancellation(seq, **kw))


def refund(seq: int = 1, **kw: Any) -> Refund:
    return Refund.model_validate(_sim.refund(seq, **kw))


def receipt(kind: DocKind, seq: int = 1, **kw: Any) -> Receipt:
    return Receipt.model_validate(_sim.receipt(kind, seq, **kw))


@dataclass(frozen=True)
class DocumentSet:
    """One parcel's four documents, consistent with each other, as central's models."""

    order: Order
    payment: Payment
    waybill: Waybill
    inventory: Inventory

    @property
    def documents(self) -> tuple[Order, Payment, Waybill, Inventory]:
        return (self.order, self.payment, self.waybill, self.inventory)


def document_set(n: int = 1, **kw: Any) -> list[DocumentSet]:
    """`n` consistent parcels (see `firmware_sim.declarations.document_set`), as models."""
    return [
        DocumentSet(
            Order.model_validate(s.order),
            Payment.model_validate(s.payment),
            Waybill.model_validate(s.waybill),
            Inventory.model_validate(s.inventory),
        )
        for s in _sim.document_set(n, **kw)
    ]
