"""The running service as the clearance code sees it: its database, its feed-signing key, its settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central import comparison
from central.config import CentralSettings
from central.feed_wakeups import FeedBell
from central.risk import RiskRules
from central.store.db import Database


@dataclass
class Platform:
    """What intake, officer actions and customs receipts need from the running service."""

    db: Database
    key: Ed25519PrivateKey
    settings: CentralSettings
    bell: FeedBell = field(default_factory=FeedBell)  # wakes the feed's long polls

    @property
    def risk_rules(self) -> RiskRules:
        r = self.settings.risk
        return RiskRules(
            sampling_rate=r.sampling_rate,
            ebc_codes=frozenset(r.ebc_codes),
            gcode_prefixes=tuple(r.gcode_prefixes),
            max_declared_value=r.max_declared_value,
            seed=r.seed,
        )

    @property
    def tolerance(self) -> comparison.WeightTolerance:
        return comparison.WeightTolerance(
            absolute_kg=self.settings.weight_tolerance_kg, percent=self.settings.weight_tolerance_percent
        )
