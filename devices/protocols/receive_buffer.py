"""The receive buffer of the framed serial protocols (MT-SICS, Toledo), sans-I/O.

It keeps the bytes received twice, side by side and in step: `masked`, with bit 7 of every byte
cleared (frames are found and decoded there: the protocols are 7-bit ASCII, and a 7-bit device read
by an 8-bit port puts its parity bit in bit 7, see `parity`), and `raw`, as received (bit 7 is
judged, and garbage reported, from there). `pos` is where the unconsumed bytes start: a parser
advances it as it takes frames, and the consumed bytes are dropped on the next `receive()` (not
per frame: a fast stream is compacted once per chunk, not once per frame).
"""

from __future__ import annotations

from devices.protocols import parity


class ReceiveBuffer:
    """Received bytes (masked and raw, same length) with a read position `pos` into both.

    `masked` and `raw` are changed in place, never replaced: a parser may keep them in locals."""

    __slots__ = ("masked", "pos", "raw")

    def __init__(self) -> None:
        self.masked = bytearray()
        self.raw = bytearray()
        self.pos = 0

    def receive(self, data: bytes) -> None:
        """Append `data`, first dropping what was consumed (the bytes before `pos`)."""
        if self.pos:
            del self.masked[: self.pos]
            del self.raw[: self.pos]
            self.pos = 0
        self.masked += data.translate(parity.MASK7)
        self.raw += data

    def clear(self) -> None:
        """Forget every byte, consumed or not."""
        self.masked.clear()
        self.raw.clear()
        self.pos = 0
