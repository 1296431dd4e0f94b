"""edge/verified.py: a text is vouched for only if exactly it was added, and the set stays bounded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge.verified import VerifiedTexts


@given(st.text(), st.text())
def test_only_the_very_text_added_is_vouched_for(added: str, other: str) -> None:
    verified = VerifiedTexts()
    verified.add(added)
    assert added in verified
    assert (other in verified) == (other == added)


@given(st.text(min_size=1), st.integers(min_value=0, max_value=10_000))
def test_one_changed_character_is_not_vouched_for(text: str, where: int) -> None:
    verified = VerifiedTexts()
    verified.add(text)
    i = where % len(text)
    changed = text[:i] + chr((ord(text[i]) + 1) % 0x110000 or 1) + text[i + 1 :]
    assert changed not in verified


def test_the_oldest_go_first_once_full() -> None:
    verified = VerifiedTexts(capacity=3)
    for text in ["a", "b", "c", "a", "d"]:  # "a" again is not a new entry
        verified.add(text)
    assert len(verified) == 3
    assert "a" not in verified
    assert all(text in verified for text in ["b", "c", "d"])
