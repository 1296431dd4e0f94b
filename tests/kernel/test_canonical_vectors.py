"""docs/test-vectors/canonical-v2.json is what the code makes (regenerate with
tools/gen_canonical_vectors.py), and the code still accepts a record signed and an event hashed in
the earlier form (docs/canonical-form.md, "The earlier form")."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kernel.wire import Event, FeedRecord, load_public_key, verify_record

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import gen_canonical_vectors  # noqa: E402


def test_the_published_vectors_are_what_the_code_makes() -> None:
    assert gen_canonical_vectors.OUT.read_text(encoding="utf-8") == gen_canonical_vectors.render()


def test_the_earlier_form_is_still_accepted_and_nothing_else_is() -> None:
    data = json.loads(gen_canonical_vectors.OUT.read_text(encoding="utf-8"))
    key = load_public_key(data["public_key_pem"])
    legacy = FeedRecord.model_validate(data["record_signed_in_the_earlier_form"]["record"])
    assert verify_record(legacy, key)
    assert not verify_record(legacy.model_copy(update={"status": "100"}), key)
    event = Event.model_validate(data["event_hashed_in_the_earlier_form"]["event"])
    assert event.hash_matches() and event.hash != event.expected_hash()
    assert not event.model_copy(update={"seq": 9}).hash_matches()
    for item in data["events"]:
        current = Event.model_validate(item["event"])
        assert current.hash_matches() and current.hash == current.expected_hash()
