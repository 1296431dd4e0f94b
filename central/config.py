"""Central's settings: one TOML file (`bondgate central serve --config central.toml`).

Every key can also come from the environment as BONDGATE_CENTRAL_<KEY> (nested: __).
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from os import PathLike
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field
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


class ReleaseNoteSettings(BaseModel):
    """Release notes (核放单): what central checks before it takes one."""

    goods_tolerance_kg: Decimal = Field(
        Decimal("2"),
        ge=0,
        description="the note's totalGrossWt may differ from its inventories' gross weights by"
        " max(this, goods_tolerance_percent %); packing for the trip (bags, pallets) adds weight",
    )
    goods_tolerance_percent: Decimal = Field(Decimal("3"), ge=0, le=100)
    require_registered_vehicle: bool = Field(
        True, description="a note's vehicle must be in the vehicle registry (its tare and IC card checked)"
    )
    require_confirmed_tare: bool = Field(
        True,
        description="a note's vehicle must have its registered weights confirmed by an officer (an"
        " officer's registration, or an officer's PUT of the enterprise's)",
    )


LIBPQ_KEYWORDS = re.compile(r"(^|\s)(host|hostaddr|dbname|user|password|port|sslmode)\s*=")


def _database_target(value: object) -> object:
    """A path as given (str or Path) or a URL, as text; an empty value is refused."""
    text = str(value) if isinstance(value, PathLike) else value
    if isinstance(text, str) and not text.strip():
        raise ValueError("empty: give a SQLite file path or a postgresql:// URL")
    if isinstance(text, str) and "://" in text and not text.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"unsupported database URL scheme {text.split('://')[0]!r}: use postgresql://")
    if isinstance(text, str) and re.search(
        r"(^|\s)(host|hostaddr|dbname|user|password|port|sslmode)\s*=", text
    ):
        raise ValueError(
            "a libpq keyword string is not taken: give a postgresql:// URL (a path is a SQLite file)"
        )
    return text


DatabaseTarget = Annotated[str, BeforeValidator(_database_target)]


class CentralSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BONDGATE_CENTRAL_", env_nested_delimiter="__", extra="forbid"
    )

    database: DatabaseTarget = Field(
        "var/central.db",
        description="SQLite database file, or a PostgreSQL URL (postgresql://user:password@host:port/db)"
        " shared by several central processes",
    )
    signing_key: Path = Field(
        Path("var/central-feed.key"), description="Ed25519 private key (PEM); created if missing"
    )
    host: str = "127.0.0.1"
    port: int = Field(8600, ge=0, le=65535)
    mode: ClearanceMode = ClearanceMode.SIMULATE
    risk: RiskSettings = Field(default_factory=RiskSettings)
    release_notes: ReleaseNoteSettings = Field(default_factory=ReleaseNoteSettings)
    weight_tolerance_kg: Decimal = Field(Decimal("0.1"), ge=0, description="waybill vs gross weight")
    weight_tolerance_percent: Decimal = Field(Decimal("5"), ge=0)
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0, description="largest request body accepted")
    feed_page_max: int = Field(5000, gt=0, description="largest feed page an edge may ask for")
    feed_recheck_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description="a long poll is woken by every commit to its park's feed (in any central process);"
        " it also re-reads the feed this often, in case a wake-up was lost",
    )
    log_level: str = "INFO"
