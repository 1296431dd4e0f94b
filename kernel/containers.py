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

__all__ = ["CATEGORIES", "TARE_KG", "check_digit", "is_valid", "normalise", "problem", "tare_problem"]

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


TARE_KG: Final[dict[str, tuple[int, int]]] = {
    "1": (1000, 1800),  # 10 ft
    "2": (1800, 3200),  # 20 ft: a 22G1 dry box is about 2,200 kg, a 22R1 reefer about 3,000
    "4": (3400, 5200),  # 40 ft: 42G1 about 3,750, 45G1 high cube about 3,900, 45R1 reefer about 4,800
    "L": (3900, 5600),  # 45 ft
}
"""Plausible tares by the first character of the ISO 6346 size-type code (the length). No public
source bounds a type's tare (each box's is on its CSC plate); these ranges span the common makers'
figures, so a declared tare outside them is a typo or weight hidden in the box's tare."""


def tare_problem(size_type: str | None, tare_kg: object) -> str | None:
    """Why a container's declared tare is not plausible for its size-type code, or None."""
    if not size_type:
        return "containerType (ISO 6346 size-type code, e.g. 22G1) is needed with a containerNo"
    bounds = TARE_KG.get(size_type.strip().upper()[:1])
    if bounds is None:
        return (
            f"containerType {size_type!r} is not an ISO 6346 size-type code of a known length (1, 2, 4, L…)"
        )
    low, high = bounds
    try:
        tare = float(str(tare_kg))
    except ValueError:
        return f"containerWt {tare_kg!r} is not a weight"
    if not low <= tare <= high:
        return (
            f"containerWt {tare_kg} kg is not a plausible tare for a {size_type} container ({low}–{high} kg)"
        )
    return None
