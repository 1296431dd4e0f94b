"""Write the small subset of TOML a configuration file needs (the standard library only reads it).

Tables, arrays of tables, strings, numbers, booleans, dates and lists of those; `None` values are
left out, as TOML has no null. `tomllib.loads(toml_dumps(d))` gives `d` back (Path and Decimal
become strings, which the settings models parse again).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_dumps(data: Mapping[str, Any]) -> str:
    """`data` as TOML that `tomllib.loads` reads back equal (Path and Decimal become strings)."""
    lines: list[str] = []
    _table(lines, [], data)
    return "\n".join(lines).lstrip("\n") + "\n"


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(_is_table(v) for v in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"no TOML for {value!r} here")
        return repr(value)
    if isinstance(value, (str, Path, Decimal)):
        # a JSON string is a valid TOML basic string (same escapes, \uXXXX included)
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        if any(_is_table(v) for v in value):
            raise ValueError("a list mixing tables and values has no TOML form here")
        return "[" + ", ".join(_value(v) for v in value if v is not None) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}: {value!r}")


def _table(lines: list[str], path: list[str], table: Mapping[str, Any], *, array: bool = False) -> None:
    scalars = {
        k: v for k, v in table.items() if v is not None and not _is_table(v) and not _is_table_array(v)
    }
    tables = {k: v for k, v in table.items() if _is_table(v)}
    arrays = {k: v for k, v in table.items() if _is_table_array(v)}
    if path:
        dotted = ".".join(_key(p) for p in path)
        lines += ["", f"[[{dotted}]]" if array else f"[{dotted}]"]
    lines += [f"{_key(k)} = {_value(v)}" for k, v in scalars.items()]
    for k, v in tables.items():
        _table(lines, [*path, k], v)
    for k, items in arrays.items():
        for item in items:
            _table(lines, [*path, k], item, array=True)
