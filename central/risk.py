"""Risk selection: which accepted inventories go to inspection (500) (DESIGN §3.3).

Rules are a watch list of e-commerce companies (ebcCode), HS code prefixes, a declared-value ceiling
and a random sampling rate. Every rule that fires is reported, so an officer sees why a parcel was
picked. The random draw is a pure function of (seed, ebpCode, orderNo): re-running the selection, in
any order or after a restart, picks the same parcels, which keeps simulations reproducible and
means a resubmitted inventory cannot dodge a sample by being sent again.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from central.ceb.documents import Inventory

_DRAW_BYTES = 8
_DRAW_RANGE = 1 << (8 * _DRAW_BYTES)


class RiskRules(BaseModel):
    """The selection rules in force; `seed` fixes the random sample."""

    model_config = ConfigDict(frozen=True)

    sampling_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    ebc_codes: frozenset[str] = frozenset()
    gcode_prefixes: tuple[str, ...] = ()
    max_declared_value: Decimal | None = Field(default=None, ge=0)
    seed: int = 0


class RiskDecision(BaseModel):
    """Whether to inspect, and every rule that said so (empty when not selected)."""

    model_config = ConfigDict(frozen=True)

    selected: bool
    reasons: list[str]


def declared_value(inventory: Inventory) -> Decimal:
    """What the inventory declares: the sum of its rows' totalPrice."""
    return sum((row.totalPrice for row in inventory.inventoryList), Decimal(0))


def sample_point(seed: int, ebp_code: str, order_no: str) -> float:
    """A number in [0, 1) fixed by the seed and the inventory key, uniform over keys.

    blake2b rather than `random` or `hash()`: stable across processes and Python versions, and
    independent of how many inventories were looked at before.
    """
    data = f"{seed}\x1f{ebp_code}\x1f{order_no}".encode()
    digest = hashlib.blake2b(data, digest_size=_DRAW_BYTES, person=b"bondgate-risk").digest()
    return int.from_bytes(digest, "big") / _DRAW_RANGE


def _watch_list_reasons(inventory: Inventory, rules: RiskRules) -> list[str]:
    if inventory.ebcCode in rules.ebc_codes:
        return [f"ebcCode {inventory.ebcCode} is on the watch list"]
    return []


def _gcode_reasons(inventory: Inventory, rules: RiskRules) -> list[str]:
    reasons = []
    for row in inventory.inventoryList:
        prefix = next((p for p in rules.gcode_prefixes if row.gcode.startswith(p)), None)
        if prefix is not None:
            reasons.append(f"gcode {row.gcode} (gnum {row.gnum}) matches watched prefix {prefix}")
    return reasons


def _value_reasons(inventory: Inventory, rules: RiskRules) -> list[str]:
    if rules.max_declared_value is None:
        return []
    value = declared_value(inventory)
    if value > rules.max_declared_value:
        return [f"declared value {value:f} exceeds {rules.max_declared_value:f}"]
    return []


def _sample_reasons(inventory: Inventory, rules: RiskRules) -> list[str]:
    if sample_point(rules.seed, inventory.ebpCode, inventory.orderNo) < rules.sampling_rate:
        return [f"random sample (rate {rules.sampling_rate:g}, seed {rules.seed})"]
    return []


def select_for_inspection(inventory: Inventory, rules: RiskRules) -> RiskDecision:
    """Apply every rule; the inventory is selected when at least one fires."""
    reasons = [
        *_watch_list_reasons(inventory, rules),
        *_gcode_reasons(inventory, rules),
        *_value_reasons(inventory, rules),
        *_sample_reasons(inventory, rules),
    ]
    return RiskDecision(selected=bool(reasons), reasons=reasons)
