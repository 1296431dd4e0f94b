"""Values made safe to echo back as JSON text: what a parser accepted may not be writable again."""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """`value` (JSON-like: dicts, lists, scalars) with what JSON text cannot carry quoted as text.

    Python's JSON parser takes NaN and Infinity, and a lone UTF-16 surrogate (`"\\ud800"`); echoing
    either in an error response made the response itself fail (a 500). A non-finite float becomes
    its name, a string with a lone surrogate gets U+FFFD in its place."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        return value
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
