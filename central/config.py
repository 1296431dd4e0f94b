"""Central's settings: one TOML file (`bondgate central serve --config central.toml`).

Every key can also come from the environment as BONDGATE_CENTRAL_<KEY> (nested: __).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ClearanceMode(StrEnum):
    SIMULATE = "simulate"  # central plays customs: consistent sets go 120 → 399 → 800 (or 500)
    CUSTOMS = "customs"  # statuses come from real customs receipts (CEB622)


class RiskSettings(BaseModel):
    """Which inventories go to inspection (500)."""

    sampling_rate: float = Field(0.03, ge=0, le=1, description="share picked at random")
    ebc_codes: list[str] = Field(default_factory=list, description="e-commerce companies always inspected")
    gcode_prefixes: list[str] = Field(default_factory=list, description="HS code prefixes always inspected")
    max_declared_value: Decimal | None = Field(None, description="declared value above this is inspected")
    seed: int = Field(0, description="makes the random sample reproducible")


class CentralSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BONDGATE_CENTRAL_", env_nested_delimiter="__", extra="forbid"
    )

    database: Path = Field(Path("var/central.db"), description="SQLite database file")
    signing_key: Path = Field(
        Path("var/central-feed.key"), description="Ed25519 private key (PEM); created if missing"
    )
    host: str = "127.0.0.1"
    port: int = Field(8600, ge=0, le=65535)
    mode: ClearanceMode = ClearanceMode.SIMULATE
    risk: RiskSettings = Field(default_factory=RiskSettings)
    weight_tolerance_kg: Decimal = Field(Decimal("0.1"), ge=0, description="waybill vs gross weight")
    weight_tolerance_percent: Decimal = Field(Decimal("5"), ge=0)
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0, description="largest request body accepted")
    feed_page_max: int = Field(5000, gt=0, description="largest feed page an edge may ask for")
    log_level: str = "INFO"
