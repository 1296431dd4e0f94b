"""Write docs/test-vectors/canonical-v2.json: records, events and checkpoints with the exact bytes
that are signed or hashed and the result, under the published test key (bytes 0..31 as the Ed25519
seed; for tests only). Deterministic: Ed25519 signatures are. tests/kernel/test_canonical_vectors.py
checks that the file is what this writes; tests/outsider/ verifies it without the project's code.

    .venv/bin/python tools/gen_canonical_vectors.py
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kernel.status import ClearanceStatus
from kernel.wire import (
    GENESIS_HASH,
    EventBody,
    EventKind,
    FeedCheckpoint,
    FeedRecord,
    canonical_json_v1,
    chain_event,
    feed_chain,
    public_key_pem,
    release_entry_hash,
    sign_checkpoint,
    sign_record,
)

OUT = Path(__file__).resolve().parents[1] / "docs" / "test-vectors" / "canonical-v2.json"
SEED = bytes(range(32))


def as_sent(event: dict[str, Any]) -> dict[str, Any]:
    """An event as a sender may send it: null members and an empty `codes` left out."""
    body = {k: v for k, v in event["body"].items() if v is not None and v != []}
    return {k: v for k, v in event.items() if v is not None} | {"body": body}


def build() -> dict[str, Any]:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    records = []
    for seq, (invt, status, when, cancelled) in enumerate(
        [
            (
                "46012025I000000001",
                ClearanceStatus.RELEASED,
                datetime(2026, 12, 5, 8, 0, 3, 652207, tzinfo=UTC),
                False,
            ),
            (None, ClearanceStatus.ACCEPTED, datetime(2026, 12, 5, 8, 0, 4, tzinfo=UTC), False),
            (
                "46012025I000000003",
                ClearanceStatus.RELEASED,
                datetime(2026, 12, 5, 8, 0, 5, 1000, tzinfo=UTC),
                True,
            ),
        ],
        start=1,
    ):
        record = sign_record(
            FeedRecord(
                seq=seq,
                park_id="HK-FTZ-1",
                invtNo=invt,
                orderNo=f"ORD00000000{seq}",
                ebpCode="4601660001",
                ebcCode="4601660002",
                logisticsCode="4601980001",
                logisticsNo=f"BGL00000000000{seq}",
                grossWeight=Decimal("0.800"),
                netWeight=Decimal("0.600"),
                goods="维生素C片 ×2; 面膜 ×1",
                status=status,
                cancelled=cancelled,
                version=seq,
                updated_at=when,
            ),
            key,
        )
        records.append(
            {
                "record": json.loads(record.model_dump_json()),
                "signed_bytes": record.signed_bytes().decode(),
                "signature": record.signature,
            }
        )
    # a record signed in the earlier form (until 2026-12-05): still to be accepted
    old = FeedRecord.model_validate(records[0]["record"])
    legacy_signature = base64.b64encode(key.sign(old.signed_bytes_v1())).decode()
    legacy = {
        "record": {**records[0]["record"], "signature": legacy_signature},
        "signed_bytes": old.signed_bytes_v1().decode(),
        "signature": legacy_signature,
    }
    served = [r["record"] for r in records]
    head = feed_chain(GENESIS_HASH, served)
    checkpoint = sign_checkpoint(FeedCheckpoint(park_id="HK-FTZ-1", cursor=3, count=3, hash=head), key)
    events = []
    prev = GENESIS_HASH
    for seq, (kind, body) in enumerate(
        [
            (EventKind.HEARTBEAT, EventBody(backlog=0)),
            (
                EventKind.RELEASE,
                EventBody(
                    logisticsCode="4601980001",
                    logisticsNo="BGL000000000001",
                    invtNo="46012025I000000001",
                    record_version=1,
                    verdict="RELEASE",
                    weight_kg=Decimal("0.815"),
                    decision_id="d-0001",
                    ledger_n=1,
                    ledger_hash=release_entry_hash(
                        GENESIS_HASH,
                        n=1,
                        logistics_no="BGL000000000001",
                        logistics_code="4601980001",
                        decision_id="d-0001",
                        record_version=1,
                    ),
                ),
            ),
            (
                EventKind.DISCREPANCY,
                EventBody(
                    logisticsCode="4601980001",
                    logisticsNo="BGL000000000002",
                    verdict="HOLD",
                    codes=["NOT_CLEARED", "WEIGHT_MISMATCH"],
                ),
            ),
        ],
        start=1,
    ):
        event = chain_event(
            prev,
            edge_id="edge-hk1",
            seq=seq,
            kind=kind,
            station="line-1",
            occurred_at=datetime(2026, 12, 5, 8, 1, seq, 250000 if seq == 2 else 0, tzinfo=UTC),
            body=body,
        )
        events.append(
            {
                "event": as_sent(json.loads(event.model_dump_json())),
                "hashed_bytes": event.hashed_bytes().decode(),
                "hash": event.hash,
            }
        )
        prev = event.hash
    first = events[0]["event"]
    legacy_bytes = (
        first["prev_hash"].encode()
        + b"\n"
        + canonical_json_v1(
            chain_event(
                GENESIS_HASH,
                edge_id="edge-hk1",
                seq=1,
                kind=EventKind.HEARTBEAT,
                station="line-1",
                occurred_at=datetime(2026, 12, 5, 8, 1, 1, tzinfo=UTC),
                body=EventBody(backlog=0),
            ).model_dump(mode="python", exclude={"hash"})
        )
    )
    return {
        "about": (
            "Bondgate canonical form v2 (docs/canonical-form.md): the bytes signed or hashed for feed"
            " records, checkpoints, the feed chain, edge events and the release ledger, with results. The"
            " private key is bytes 0..31 (RFC 8032 seed); for tests only."
            " Generated by tools/gen_canonical_vectors.py."
        ),
        "private_key_seed_hex": SEED.hex(),
        "public_key_pem": public_key_pem(key.public_key()),
        "records": records,
        "record_signed_in_the_earlier_form": legacy,
        "chain": {
            "genesis": GENESIS_HASH,
            "records": "the three records above, as served, in order",
            "hash": head,
        },
        "checkpoint": {
            "checkpoint": json.loads(checkpoint.model_dump_json()),
            "signed_bytes": checkpoint.signed_bytes().decode(),
        },
        "events": events,
        "event_hashed_in_the_earlier_form": {
            "event": {**first, "hash": hashlib.sha256(legacy_bytes).hexdigest()},
            "hashed_bytes": legacy_bytes.decode(),
        },
    }


def render() -> str:
    return json.dumps(build(), ensure_ascii=False, indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
