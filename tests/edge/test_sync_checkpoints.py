"""The sync's page verifier (edge/sync.py `check_checkpoint`, `check_extends`) on its own: an honest
page is taken, a page with any record left out, added, changed or reordered is refused, and any
value at all where the checkpoint should be is refused with a reason, never a crash."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.sync import FeedRefused, check_checkpoint, check_extends
from kernel.wire import FeedCheckpoint, genesis_checkpoint
from testkit.fake_feed_central import Feed

KEY = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
PUBLIC = KEY.public_key()


def _feed(n: int) -> Feed:
    feed = Feed(KEY)
    for i in range(n):
        feed.add(logisticsNo=f"SF{i % 4:010d}", version=1 + i // 4, status=("399", "800")[i % 2])
    return feed


def _verified(page: dict[str, Any]) -> FeedCheckpoint:
    return check_checkpoint(page["checkpoint"], "P1", PUBLIC)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 14), st.data())
def test_an_honest_feed_is_taken_page_by_page(n: int, data: st.DataObject) -> None:
    feed = _feed(n)
    limit = data.draw(st.integers(1, n + 1))
    base, after = genesis_checkpoint("P1"), 0
    while True:
        page = feed.page(after, limit)
        checkpoint = _verified(page)
        check_extends(base, checkpoint, page["records"], page["next_after"])
        base, after = checkpoint, page["next_after"]
        if not page["has_more"]:
            break
    assert base.count == n and base.cursor == feed.records[-1]["seq"]
    empty = feed.page(after, limit)  # nothing new: the same checkpoint again
    check_extends(base, _verified(empty), empty["records"], empty["next_after"])


MUTATIONS = ["omit", "add", "repeat", "change", "swap"]


@settings(max_examples=120, deadline=None)
@given(st.integers(2, 12), st.sampled_from(MUTATIONS), st.data())
def test_a_page_with_anything_left_out_added_changed_or_reordered_is_refused(
    n: int, mutation: str, data: st.DataObject
) -> None:
    feed = _feed(n)
    start = data.draw(st.integers(0, n - 2))
    base = _verified(feed.page(0, start)) if start else genesis_checkpoint("P1")
    page = feed.page(feed.records[start - 1]["seq"] if start else 0, n)
    records = list(page["records"])
    i = data.draw(st.integers(0, len(records) - 1))
    if mutation == "omit":
        del records[i]
    elif mutation == "add":
        records.insert(i, Feed(KEY).add(logisticsNo="SF9999999999") | {"seq": records[i]["seq"]})
    elif mutation == "repeat":
        records.insert(i, records[i])
    elif mutation == "change":
        field = data.draw(st.sampled_from(["status", "cancelled", "version", "seq", "signature", "goods"]))
        records[i] = records[i] | {field: {"status": "801", "cancelled": True, "version": 99}.get(field, "x")}
    else:
        j = data.draw(st.integers(0, len(records) - 1).filter(lambda j: records[j] != records[i]))
        records[i], records[j] = records[j], records[i]
    with pytest.raises(FeedRefused) as refused:
        check_extends(base, _verified(page), records, page["next_after"])
    assert refused.value.reason == "fork"


def test_a_copy_behind_what_the_edge_verified_is_refused_as_stale() -> None:
    feed = _feed(6)
    seen = _verified(feed.page(0, 6))
    old = feed.page(0, 3)
    with pytest.raises(FeedRefused) as refused:
        check_extends(seen, _verified(old), old["records"], old["next_after"])
    assert refused.value.reason == "behind"


def test_a_checkpoint_of_another_park_or_key_or_cursor_is_refused() -> None:
    page = _feed(3).page(0, 3)
    with pytest.raises(FeedRefused, match="wrong_park"):
        check_checkpoint(page["checkpoint"], "P2", PUBLIC)
    with pytest.raises(FeedRefused, match="signature fails"):
        check_checkpoint(page["checkpoint"], "P1", Ed25519PrivateKey.generate().public_key())
    with pytest.raises(FeedRefused, match="signature fails"):
        check_checkpoint(page["checkpoint"] | {"count": 2}, "P1", PUBLIC)
    with pytest.raises(FeedRefused, match="not the checkpoint's cursor"):
        check_extends(genesis_checkpoint("P1"), _verified(page), page["records"], page["next_after"] + 1)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=12,
)
checkpoint_like = st.fixed_dictionaries(
    {},
    optional={
        "park_id": st.one_of(st.just("P1"), json_values),
        "cursor": st.one_of(st.integers(-5, 2**64), json_values),
        "count": st.one_of(st.integers(-5, 2**64), json_values),
        "hash": st.one_of(st.just("ab" * 32), json_values),
        "signature": st.one_of(st.just("A" * 88), json_values),
        "extra": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, checkpoint_like), st.lists(json_values, max_size=4))
def test_any_value_as_a_checkpoint_or_records_is_refused_not_a_crash(raw: Any, records: list[Any]) -> None:
    json.dumps(raw)  # it came out of a JSON page
    with pytest.raises(FeedRefused):
        checkpoint = check_checkpoint(raw, "P1", PUBLIC)
        check_extends(genesis_checkpoint("P1"), checkpoint, records, checkpoint.cursor)
