"""API tokens with roles. Secrets are random and shown once; only their SHA-256 is stored.

A token looks like ``bg_<token_id>_<secret>``; the id lets operators name and revoke it.
"""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum

from central.store import parks as store
from central.store.db import Database
from kernel.timefmt import iso_now


class Role(StrEnum):
    ENTERPRISE = "enterprise"  # platforms, payment companies, carriers: submit documents
    EDGE = "edge"  # a park's edge agent: pulls its feed, reports its events
    OFFICER = "officer"  # customs officer: queries, inspection outcomes, receipts
    ADMIN = "admin"  # parks, tokens, everything


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    db: Database,
    *,
    role: Role,
    name: str,
    park_id: str | None = None,
    edge_id: str | None = None,
    enterprise_codes: list[str] | None = None,
) -> tuple[str, store.TokenRow]:
    """Mint a token; returns (the secret token, shown once, and its row). An edge token is bound to
    its park and to one edge id: it reports events for that edge only."""
    if role is Role.EDGE and not park_id:
        raise ValueError("an edge token must name its park")
    if role is Role.EDGE and not edge_id:
        raise ValueError("an edge token must name its edge (edge_id)")
    if role is not Role.EDGE and edge_id:
        raise ValueError("only an edge token names an edge")
    if role is Role.ENTERPRISE and not enterprise_codes:
        raise ValueError("an enterprise token must name the enterprise codes it acts for (enterprise_codes)")
    if role is not Role.ENTERPRISE and enterprise_codes:
        raise ValueError("only an enterprise token names enterprise codes")
    if park_id is not None and store.get_park(db, park_id=park_id) is None:
        raise LookupError(f"no park {park_id!r}")
    token_id = secrets.token_hex(4)
    token = f"bg_{token_id}_{secrets.token_urlsafe(24)}"
    row = store.insert_token(
        db,
        token_id=token_id,
        token_hash=hash_token(token),
        role=role.value,
        park_id=park_id,
        name=name,
        now=iso_now(),
        edge_id=edge_id,
        enterprise_codes=enterprise_codes,
    )
    return token, row


def authenticate(db: Database, token: str) -> store.TokenRow | None:
    return store.find_token(db, token_hash=hash_token(token))
