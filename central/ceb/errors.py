"""The one error CEB intake raises, so callers handle a refused message in one place.

An HTTP route answers a CebError with its `code` (stable, for machines) and `reason` (for the
sender's staff, naming document, element and rule); anything else escaping intake is a bug.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Why a message was refused; values are stable and compare equal to plain strings."""

    XML_SYNTAX = "xml_syntax"  # not well-formed XML: truncated, garbage, empty, bad encoding
    ENTITY_FORBIDDEN = "entity_forbidden"  # DOCTYPE / entity declarations (XXE, billion laughs)
    NAMESPACE = "namespace"  # an element outside http://www.chinaport.gov.cn/ceb
    UNSUPPORTED_MESSAGE = "unsupported_message"  # a message type central does not take
    TOO_MANY_DOCUMENTS = "too_many_documents"  # more than the standard's 100 per message
    TOO_LARGE = "too_large"  # more bytes than the configured limit, refused before parsing
    STRUCTURE = "structure"  # elements missing, unknown, repeated or out of the XSD's order
    FIELD_RULES = "field_rules"  # values breaking the standard's field rules (central/ceb/fields.py)


# a reason lists at most this many problems; `problems` keeps them all
MAX_LISTED = 50


class CebError(Exception):
    """A refused CEB message: `code` says which kind of refusal, `reason` says exactly what is wrong.

    `problems` holds every individual finding (one for most codes, all of them for field_rules, so
    a sender fixes a whole batch in one round trip).
    """

    def __init__(self, code: ErrorCode, problems: str | list[str]) -> None:
        self.code = code
        self.problems: tuple[str, ...] = (problems,) if isinstance(problems, str) else tuple(problems)
        listed = "; ".join(self.problems[:MAX_LISTED])
        more = len(self.problems) - MAX_LISTED
        self.reason = listed + (f"; and {more} more" if more > 0 else "")
        super().__init__(self.reason)

    def __repr__(self) -> str:
        return f"CebError({self.code.value!r}, {self.reason!r})"
