"""A verifier written from docs/canonical-form.md alone, as another implementation would be: it
imports nothing from Bondgate (only the standard library and `cryptography` for Ed25519)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

DATE_TIME_KEYS = {"updated_at", "occurred_at"}


def _date_time(text: str) -> str:
    """Rule 3: UTC, six-digit fraction only when not zero, `Z`."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def _clean(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            c = _clean(v, k)
            if c is None or c == [] or c == {}:
                continue  # rule 1
            out[k] = c
        return out
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if key in DATE_TIME_KEYS and isinstance(value, str):
        return _date_time(value)
    return value


def canonical_json(obj: dict[str, Any]) -> bytes:
    """Rule 4."""
    return json.dumps(_clean(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def public_key(pem: str) -> Ed25519PublicKey:
    key = load_pem_public_key(pem.encode())
    assert isinstance(key, Ed25519PublicKey)
    return key


def _verify(key: Ed25519PublicKey, signature_b64: str, data: bytes) -> bool:
    try:
        key.verify(base64.b64decode(signature_b64, validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True


def record_signed_bytes(record: dict[str, Any]) -> bytes:
    return b"bondgate-feed-v1\n" + canonical_json(
        {k: v for k, v in record.items() if k not in ("seq", "signature")}
    )


def record_ok(key: Ed25519PublicKey, record: dict[str, Any]) -> bool:
    return _verify(key, record["signature"], record_signed_bytes(record))


def checkpoint_signed_bytes(checkpoint: dict[str, Any]) -> bytes:
    fields = {k: checkpoint[k] for k in ("park_id", "cursor", "count", "hash")}
    return b"bondgate-checkpoint-v1\n" + canonical_json(fields)


def checkpoint_ok(key: Ed25519PublicKey, checkpoint: dict[str, Any]) -> bool:
    return _verify(key, checkpoint["signature"], checkpoint_signed_bytes(checkpoint))


def chain(prev_hex: str, records: list[dict[str, Any]]) -> str:
    state = bytes.fromhex(prev_hex)
    for record in records:
        leaf = hashlib.sha256(b"\x00" + canonical_json(record)).digest()
        state = hashlib.sha256(b"\x01" + state + leaf).digest()
    return state.hex()


def event_hashed_bytes(event: dict[str, Any]) -> bytes:
    body = {k: v for k, v in event.items() if k != "hash"}
    return event["prev_hash"].encode() + b"\n" + canonical_json(body)


def event_ok(event: dict[str, Any]) -> bool:
    return hashlib.sha256(event_hashed_bytes(event)).hexdigest() == event["hash"]


def ledger_hash(prev: str, entry: dict[str, Any]) -> str:
    return hashlib.sha256(
        b"bondgate-release-v1\n" + prev.encode() + b"\n" + canonical_json(entry)
    ).hexdigest()
