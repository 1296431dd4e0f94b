"""ISO 6346 container numbers: owner code (3 letters), category (U, J or Z), serial (6 digits), check digit.

Why here: central validates the container number a release note declares, and the edge's vehicle gate
compares what container-number recognition read against it; both must agree on one check-digit rule.

The check digit (ISO 6346 Annex A): letters take the values 10 upwards, skipping the multiples of 11
(A=10, B=12 … K=21, L=23 … U=32 … Z=38), digits their own value; the i-th of the first ten characters
(0-based) is weighted 2**i, the sum is taken mod 11, and a remainder of 10 is written 0.
Example: CSQU305438 → 3.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["CATEGORIES", "check_digit", "is_valid", "normalise", "problem"]

CATEGORIES: Final = "UJZ"  # U freight container, J detachable equipment, Z trailer or chassis

_SHAPE: Final = re.compile(r"[A-Z]{3}[UJZ][0-9]{7}")
_LETTER_VALUES: Final[dict[str, int]] = {}
_value = 10
for _letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    if _value % 11 == 0:
        _value += 1
    _LETTER_VALUES[_letter] = _value
    _value += 1


def normalise(text: str) -> str:
    """Upper case without the spaces, hyphens and slashes that print and OCR put in (CSQU 305438-3)."""
    return re.sub(r"[\s\-/]", "", text).upper()


def check_digit(first_ten: str) -> int:
    """The check digit of owner code + category + serial (10 characters, already upper case)."""
    if len(first_ten) != 10 or not re.fullmatch(r"[A-Z]{4}[0-9]{6}", first_ten):
        raise ValueError(f"{first_ten!r} is not 4 letters and 6 digits")
    total = sum((_LETTER_VALUES[c] if c.isalpha() else int(c)) << i for i, c in enumerate(first_ten))
    return total % 11 % 10


def problem(number: str) -> str | None:
    """Why `number` (normalised) is not a valid ISO 6346 container number, or None when it is."""
    if not _SHAPE.fullmatch(number):
        return f"container number {number!r} is not 3 letters, a category U/J/Z, 6 digits and a check digit"
    expected = check_digit(number[:10])
    if int(number[10]) != expected:
        return f"container number {number!r} fails the ISO 6346 check digit (expected {expected})"
    return None


def is_valid(number: str) -> bool:
    return problem(number) is None
