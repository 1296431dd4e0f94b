"""The feed's running hash and signed checkpoints (kernel/wire.py), and the published test vector.

Properties: hashing a feed page by page gives what hashing it whole gives, whatever the split; any
record left out, added, changed, reordered or duplicated changes the hash; a checkpoint verifies only
unchanged and under central's key; any JSON value hashes without an error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from kernel.wire import (
    GENESIS_HASH,
    FeedCheckpoint,
    FeedRecord,
    feed_chain,
    feed_leaf,
    load_public_key,
    release_entry_hash,
    sign_checkpoint,
    verify_checkpoint,
    verify_record,
)

VECTOR = Path(__file__).resolve().parents[2] / "docs" / "test-vectors" / "feed-checkpoint-v1.json"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
records = st.dictionaries(
    st.sampled_from(["seq", "park_id", "logisticsNo", "status", "version", "signature", "goods"]),
    json_values,
    min_size=1,
)
feeds = st.lists(records, max_size=12)


@given(feeds, st.data())
def test_hashing_page_by_page_is_hashing_the_whole_feed(
    feed: list[dict[str, Any]], data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(feed)), max_size=4)))
    running, start = GENESIS_HASH, 0
    for cut in [*cuts, len(feed)]:
        running = feed_chain(running, feed[start:cut])
        start = cut
    assert running == feed_chain(GENESIS_HASH, feed)


@given(feeds.filter(bool), st.data())
def test_leaving_out_adding_changing_or_reordering_a_record_changes_the_hash(
    feed: list[dict[str, Any]], data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(feed) - 1))
    other = data.draw(records)
    variants = [
        feed[:i] + feed[i + 1 :],  # left out
        [*feed[:i], other, *feed[i:]],  # added
        [*feed[:i], feed[i], *feed[i:]],  # repeated
        [*feed[:i], other, *feed[i + 1 :]],  # changed
    ]
    if len(feed) > 1:
        j = data.draw(st.integers(0, len(feed) - 1))
        swapped = list(feed)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        variants.append(swapped)  # reordered
    honest = feed_chain(GENESIS_HASH, feed)
    for variant in variants:
        if [feed_leaf(r) for r in variant] == [feed_leaf(r) for r in feed]:
            continue  # the canonical form drops None fields: a "change" may be none at all
        assert feed_chain(GENESIS_HASH, variant) != honest


@given(json_values)
def test_any_json_value_hashes(value: Any) -> None:
    assert len(feed_leaf(value)) == 32
    assert len(feed_chain(GENESIS_HASH, [value])) == 64


@given(
    st.sampled_from(["park_id", "cursor", "count", "hash"]),
    st.integers(min_value=1, max_value=10**6),
)
def test_a_checkpoint_verifies_only_as_signed(field: str, change: int) -> None:
    honest = sign_checkpoint(FeedCheckpoint(park_id="P1", cursor=90, count=45, hash="ab" * 32), KEY)
    assert verify_checkpoint(honest, KEY.public_key())
    altered_value = {
        "park_id": "P2",
        "cursor": honest.cursor + change,
        "count": honest.count + change,
        "hash": f"{change:064x}",
    }[field]
    altered = honest.model_copy(update={field: altered_value})
    assert not verify_checkpoint(altered, KEY.public_key())
    assert not verify_checkpoint(honest, Ed25519PrivateKey.generate().public_key())


def test_a_record_signature_is_no_checkpoint_signature() -> None:
    """Domain separation: central's signature over one form never verifies as the other."""
    checkpoint = sign_checkpoint(FeedCheckpoint(park_id="P1", cursor=1, count=1, hash="00" * 32), KEY)
    record = FeedRecord.model_validate(_vector()["records"][0])
    assert not verify_record(record.model_copy(update={"signature": checkpoint.signature}), KEY.public_key())
    assert not verify_checkpoint(
        checkpoint.model_copy(update={"signature": record.signature}), KEY.public_key()
    )


def _vector() -> dict[str, Any]:
    return json.loads(VECTOR.read_text(encoding="utf-8"))


def test_the_published_test_vector_holds() -> None:
    """docs/test-vectors/feed-checkpoint-v1.json: what another implementation must reproduce."""
    vector = _vector()
    public = load_public_key(vector["public_key_pem"])
    assert public.public_bytes_raw() == KEY.public_key().public_bytes_raw()
    running = GENESIS_HASH
    for record, step in zip(vector["records"], vector["chain"], strict=True):
        assert verify_record(FeedRecord.model_validate(record), public)
        assert feed_leaf(record).hex() == step["leaf"]
        running = feed_chain(running, [record])
        assert running == step["hash"]
    checkpoint = FeedCheckpoint.model_validate(vector["checkpoint"])
    assert checkpoint.hash == running and checkpoint.count == len(vector["records"])
    assert checkpoint.signed_bytes().decode() == vector["checkpoint_signed_bytes"]
    assert verify_checkpoint(checkpoint, public)
    assert sign_checkpoint(checkpoint, KEY).signature == checkpoint.signature  # Ed25519 is deterministic
    ledger = vector["release_ledger"]
    prev = GENESIS_HASH
    for entry in ledger:
        fields = {
            k: entry[k] for k in ("n", "logistics_no", "logistics_code", "decision_id", "record_version")
        }
        prev = release_entry_hash(prev, **fields)
        assert prev == entry["hash"]
