"""The need-data sentinel every sans-I/O parser here returns (h11's `NEED_DATA`).

`parser.next_event()` returns an event, or `NEED_DATA` when nothing more can be framed from the
bytes received so far: the caller then reads more and calls `receive_data()`. It is one object,
compared with `is`, and typed as its own literal so that `event is NEED_DATA` narrows the union.
"""

from __future__ import annotations

from enum import Enum
from typing import Final, Literal


class _Need(Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = _Need.NEED_DATA
NeedData = Literal[_Need.NEED_DATA]
