"""Vehicle plates as the registry, the release notes and the vehicle gate compare them.

Why here: central keys its vehicle registry and notes by the normalised plate, and the edge's gate
compares what plate recognition read against the note; an alias that normalises alike on one side
and not on the other would be a second vehicle at central and the same one at the gate.
"""

from __future__ import annotations

from typing import Final

__all__ = ["SEPARATORS", "normalise_plate"]

SEPARATORS: Final = frozenset("-‐‑－.·．・")  # hyphens and dots, ASCII and the full-width / CJK ones


def normalise_plate(text: str) -> str:
    """Upper-case ASCII, without whitespace, hyphens and dots (沪A·12345 → 沪A12345); every other
    character kept. Also used for card numbers."""
    return "".join(c.upper() if c.isascii() else c for c in text if not (c.isspace() or c in SEPARATORS))
