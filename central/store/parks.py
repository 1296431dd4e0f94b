"""Parks and API tokens."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from central.store.connection import Connection
from central.store.db import Database


@dataclass(frozen=True)
class ParkRow:
    park_id: str
    name: str
    ems_nos: list[str]
    area_codes: list[str]
    created_at: str


_PARK = ", ".join(f.name for f in fields(ParkRow))  # the columns a ParkRow is made of


def _park(row: Any) -> ParkRow:
    return ParkRow(
        **{**dict(row), "ems_nos": json.loads(row["ems_nos"]), "area_codes": json.loads(row["area_codes"])}
    )


def upsert_park(
    db: Database, *, park_id: str, name: str, ems_nos: list[str], area_codes: list[str], now: str
) -> ParkRow:
    with db.write() as conn:
        conn.execute(
            """INSERT INTO parks (park_id, name, ems_nos, area_codes, created_at) VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (park_id) DO UPDATE SET name = excluded.name, ems_nos = excluded.ems_nos,
               area_codes = excluded.area_codes""",
            (park_id, name, json.dumps(ems_nos), json.dumps(area_codes), now),
        )
    found = get_park(db, park_id=park_id)
    assert found is not None
    return found


def get_park(db: Database, *, park_id: str) -> ParkRow | None:
    row = db.reader().execute(f"SELECT {_PARK} FROM parks WHERE park_id = ?", (park_id,)).fetchone()
    return _park(row) if row else None


def list_parks(db: Database) -> list[ParkRow]:
    return [_park(r) for r in db.reader().execute(f"SELECT {_PARK} FROM parks ORDER BY park_id")]


def park_index(conn: Connection) -> dict[str, str]:
    """Map every emsNo and areaCode to the park that owns it (read inside a write transaction)."""
    index: dict[str, str] = {}
    for row in conn.execute("SELECT park_id, ems_nos, area_codes FROM parks"):
        for code in json.loads(row["ems_nos"]):
            index[f"ems:{code}"] = row["park_id"]
        for code in json.loads(row["area_codes"]):
            index[f"area:{code}"] = row["park_id"]
    return index


@dataclass(frozen=True)
class TokenRow:
    token_id: str
    role: str
    park_id: str | None
    name: str
    created_at: str
    revoked_at: str | None
    edge_id: str | None = None  # an edge token's edge; None: made before tokens were bound, not yet used
    enterprise_codes: frozenset[str] | None = None  # an enterprise token's codes; None: made before


_TOKEN = ", ".join(f.name for f in fields(TokenRow))  # the columns a TokenRow is made of (not the hash)


def _token(row: Any) -> TokenRow:
    codes = row["enterprise_codes"]
    return TokenRow(
        **{**dict(row), "enterprise_codes": None if codes is None else frozenset(json.loads(codes))}
    )


def insert_token(
    db: Database,
    *,
    token_id: str,
    token_hash: str,
    role: str,
    park_id: str | None,
    name: str,
    now: str,
    edge_id: str | None = None,
    enterprise_codes: Iterable[str] | None = None,
) -> TokenRow:
    codes = None if enterprise_codes is None else sorted(set(enterprise_codes))
    with db.write() as conn:
        if edge_id is not None:
            owner = conn.execute("SELECT park_id FROM edges WHERE edge_id = ?", (edge_id,)).fetchone()
            other = conn.execute(
                "SELECT park_id FROM tokens WHERE edge_id = ? AND park_id != ? AND revoked_at IS NULL",
                (edge_id, park_id),
            ).fetchone()
            if (owner is not None and owner[0] != park_id) or other is not None:
                raise ValueError(f"edge {edge_id} belongs to another park")
        conn.execute(
            "INSERT INTO tokens (token_id, token_hash, role, park_id, name, created_at, edge_id,"
            " enterprise_codes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                token_id,
                token_hash,
                role,
                park_id,
                name,
                now,
                edge_id,
                None if codes is None else json.dumps(codes),
            ),
        )
    return TokenRow(
        token_id, role, park_id, name, now, None, edge_id, None if codes is None else frozenset(codes)
    )


def token_edge(conn: Connection, *, token_id: str) -> str | None:
    row = conn.execute("SELECT edge_id FROM tokens WHERE token_id = ?", (token_id,)).fetchone()
    return row[0] if row else None


def edge_park(conn: Connection, *, edge_id: str) -> str | None:
    """The park an edge id belongs to: the park it reports in, or, before its first report, the park
    of the live token bound to it (None: no edge and no token of that id)."""
    row = conn.execute("SELECT park_id FROM edges WHERE edge_id = ?", (edge_id,)).fetchone()
    if row is None:
        row = conn.execute(
            "SELECT park_id FROM tokens WHERE edge_id = ? AND revoked_at IS NULL ORDER BY created_at LIMIT 1",
            (edge_id,),
        ).fetchone()
    return None if row is None else row[0]


def bind_token_edge(conn: Connection, *, token_id: str, edge_id: str) -> bool:
    """Bind a token made before tokens were bound to the edge it first reports for; False if it
    was bound meanwhile, or another token holds that edge (it is theirs, not for the taking)."""
    cur = conn.execute(
        "UPDATE tokens SET edge_id = ? WHERE token_id = ? AND edge_id IS NULL AND NOT EXISTS"
        " (SELECT 1 FROM tokens WHERE edge_id = ? AND revoked_at IS NULL) RETURNING token_id",
        (edge_id, token_id, edge_id),
    )
    return cur.fetchone() is not None  # rows returned, not rowcount: PostgreSQL pipelines writes


def find_token(db: Database, *, token_hash: str) -> TokenRow | None:
    row = (
        db.reader()
        .execute(f"SELECT {_TOKEN} FROM tokens WHERE token_hash = ? AND revoked_at IS NULL", (token_hash,))
        .fetchone()
    )
    return _token(row) if row else None


def revoke_token(db: Database, *, token_id: str, now: str) -> bool:
    with db.write() as conn:
        revoked = conn.execute(
            "UPDATE tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL RETURNING token_id",
            (now, token_id),
        ).fetchone()
    return revoked is not None


def list_tokens(db: Database) -> list[TokenRow]:
    return [_token(r) for r in db.reader().execute(f"SELECT {_TOKEN} FROM tokens ORDER BY created_at")]
