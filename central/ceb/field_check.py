"""Check one entity's fields against the standard's rules (central/ceb/fields.py).

The same check guards XML and JSON intake, so both refuse the same documents with the same words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Any

from central.ceb.fields import FIELDS

APP_TYPES = {"1", "2", "3"}  # 1 new, 2 change, 3 delete
APP_STATUSES = {"1", "2"}  # 1 staged (暂存), 2 declared (申报)
DATE14 = re.compile(r"^\d{14}$")
DATE8 = re.compile(r"^\d{8}$")
# XSD lexical forms: Python's Decimal() and int() also take "1e5", "1_000" and non-ASCII digits,
# which the schema (and so customs) refuses.
# Numbers are matched whole after stripping XML whitespace only (str.strip() would also take U+3000).
XS_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
XS_INT = re.compile(r"[+-]?[0-9]+")
XML_SPACE = " \t\r\n"
XS_INT_RANGE = range(-(2**31), 2**31)
# The XSD types every number as a plain decimal or int, sign and all; the standard's meaning does
# not: an amount, a price, freight, tax, insurance or a weight is never negative, and a quantity, a
# package count or a line number is at least one. A fully negative but self-consistent set passes
# the three-document comparison, so these are refused at intake, where the sender can be told.
POSITIVE = frozenset({"qty", "qty1", "qty2", "packNo", "gnum"})


@cache
def _pattern(expr: str) -> re.Pattern[str]:
    return re.compile(rf"^(?:{expr})$")


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _digit_counts(text: str) -> tuple[int, int]:
    """(total digits, fraction digits) of a decimal as the XSD counts them: on the value, not the text.

    So "1.500000" has one fraction digit and "007" one digit, as lxml and customs' validators see
    it. Works on the text (already matched against XS_DECIMAL) so a 10 MB number costs one pass.
    """
    whole, _, frac = text.lstrip("+-").partition(".")
    whole, frac = whole.lstrip("0"), frac.rstrip("0")
    return max(1, len(whole) + len(frac)), len(frac)


def _decimal_problem(where: str, rule: Mapping[str, Any], text: str) -> str | None:
    if not XS_DECIMAL.fullmatch(text):
        return f"{where}: {_clip(text)!r} is not a decimal number"
    total, frac = _digit_counts(text)
    if frac > rule.get("fractionDigits", 5):
        return f"{where}: {_clip(text)} has more than {rule.get('fractionDigits', 5)} decimal places"
    if total > rule.get("totalDigits", 19):
        return f"{where}: {_clip(text)} has more than {rule.get('totalDigits', 19)} digits"
    return None


def _sign_problem(where: str, name: str, text: str) -> str | None:
    """Called on a number already matched and bounded: the standard's sign rule for the field."""
    value = Decimal(text)
    if name in POSITIVE:
        if value <= 0:
            return f"{where}: {_clip(text)} must be greater than 0"
    elif value < 0:
        return f"{where}: {_clip(text)} must not be negative"
    return None


def _int_problem(where: str, rule: Mapping[str, Any], text: str) -> str | None:
    if not XS_INT.fullmatch(text):
        return f"{where}: {_clip(text)!r} is not an integer"
    digits = text.lstrip("+-").lstrip("0") or "0"
    if "totalDigits" in rule and len(digits) > rule["totalDigits"]:
        return f"{where}: {_clip(text)} has more than {rule['totalDigits']} digits"
    # length first: int() refuses strings over 4300 digits with a ValueError of its own
    if len(digits) > 10 or int(text) not in XS_INT_RANGE:
        return f"{where}: {_clip(text)} is out of the 32-bit integer range"
    return None


def check_value(entity: str, name: str, value: Any) -> str | None:
    """Return a reason if `value` breaks the rule for `entity.name`, else None."""
    rule = FIELDS[entity].get(name)
    if rule is None:
        return None
    raw = value if isinstance(value, str) else _text(value)
    if rule["kind"] in ("decimal", "int"):
        where = f"{entity}.{name}"
        number = raw.strip(XML_SPACE)
        check = _decimal_problem if rule["kind"] == "decimal" else _int_problem
        return check(where, rule, number) or _sign_problem(where, name, number)
    text = raw.strip()
    length = len(text)
    # the common case, a value that passes, builds no message (a document has some 50 fields)
    if "length" in rule and length != rule["length"]:
        return f"{entity}.{name}: length {length}, the standard requires exactly {rule['length']}"
    if "maxLength" in rule and length > rule["maxLength"]:
        return f"{entity}.{name}: length {length} exceeds the maximum {rule['maxLength']}"
    if "minLength" in rule and length < rule["minLength"]:
        return f"{entity}.{name}: length {length} is below the minimum {rule['minLength']}"
    if "enum" in rule and text not in rule["enum"]:
        return f"{entity}.{name}: {_clip(text)!r} is not one of {', '.join(rule['enum'])}"
    if "pattern" in rule and not _pattern(rule["pattern"]).match(text):
        return f"{entity}.{name}: {_clip(text)!r} does not match {rule['pattern']}"
    if name in _SPECIAL:
        return _special_problem(f"{entity}.{name}", name, text)
    return None


_SPECIAL = frozenset({"appType", "appStatus", "appTime", "payTime", "declTime", "ieDate"})


def _special_problem(where: str, name: str, text: str) -> str | None:
    shown = _clip(text)  # values come from outside: a reason quotes at most the start of one
    if name == "appType" and text not in APP_TYPES:
        return f"{where}: {shown!r} is not 1 (new), 2 (change) or 3 (delete)"
    if name == "appStatus" and text not in APP_STATUSES:
        return f"{where}: {shown!r} is not 1 (staged) or 2 (declared)"
    if name in {"appTime", "payTime"} and not DATE14.match(text):
        return f"{where}: {shown!r} is not yyyyMMddHHmmss"
    if name in {"declTime", "ieDate"} and not DATE8.match(text):
        return f"{where}: {shown!r} is not yyyyMMdd"
    return None


def check_fields(entity: str, data: Mapping[str, Any]) -> list[str]:
    """Every rule `data` breaks as entity `entity`: missing required fields, lengths, formats.

    An empty text counts as absent (official messages carry `<preNo></preNo>` for "none"); an
    empty number does not: the XSD's decimal and int have no empty form, so an optional amount is
    given or left out, and an empty one is refused rather than taken as absent.
    """
    problems: list[str] = []
    for name, rule in FIELDS[entity].items():
        value = data.get(name)
        if value is None or (isinstance(value, str) and value.strip() == ""):
            if rule["required"]:
                problems.append(f"{entity}.{name}: required field is missing")
            elif value is not None and rule["kind"] != "str":
                number = "a decimal number" if rule["kind"] == "decimal" else "an integer"
                problems.append(f"{entity}.{name}: empty; give {number} or leave the field out")
            continue
        if isinstance(value, (list, dict)):
            problems.append(f"{entity}.{name}: must be a single value")
            continue
        reason = check_value(entity, name, value)
        if reason:
            problems.append(reason)
    return problems
