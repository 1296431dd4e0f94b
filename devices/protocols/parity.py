"""Bit 7 of a 7-bit device's bytes read by an 8-bit port, sans-I/O.

Why: a device set to 7 data bits sends a parity bit (7E1, 7O1) or a stop bit (7N2, 7M1) after its
seven, and a port opened with 8 data bits takes that bit for bit 7 of the byte. The scale protocols
here (MT-SICS, Toledo 8217 and continuous output) are 7-bit ASCII, so bit 7 is never data. But bit 7
may also be a corrupted bit on a real 8-bit line, so it is stripped only when it is consistently one
kind of parity across a whole frame (or line): then the frame is its masked bytes, and the caller
learns which parity the device uses. A frame whose bit 7 follows no rule is noise and is rejected,
never guessed at.
"""

from __future__ import annotations

from typing import Final, Literal

BitParity = Literal["E", "O", "M"]  # even, odd, mark (always 1: 7M1, or 7N2's second stop bit)
Seen = BitParity | Literal[False] | None  # what bit7() found: a parity, no rule (False), or clear

MASK7: Final = bytes(range(128)) * 2  # bytes.translate table: every byte & 0x7F


def _parity(value: int, kind: BitParity) -> int:
    ones = bin(value).count("1") & 1
    return {"E": ones, "O": 1 - ones, "M": 1}[kind]


# for each kind, a translate table: 1 where a byte's bit 7 is that parity of its low seven bits
_CONSISTENT: Final[dict[BitParity, bytes]] = {
    kind: bytes(int(b >> 7 == _parity(b & 0x7F, kind)) for b in range(256)) for kind in ("E", "O", "M")
}
_HIGH: Final = bytes(range(128, 256))


def bit7(raw: bytes) -> BitParity | Literal[False] | None:
    """How bit 7 is used in `raw`: None — clear in every byte; "E"/"O"/"M" — every byte's even, odd
    or mark parity bit; False — none of these (a corrupted byte, or noise)."""
    if len(raw.translate(None, _HIGH)) == len(raw):
        return None
    for kind, table in _CONSISTENT.items():
        if 0 not in raw.translate(table):
            return kind
    return False


def add(data: bytes, kind: BitParity) -> bytes:
    """`data` as a 7-bit device with `kind` parity expects it from a port that sends 8 data bits: the
    parity bit in bit 7 of each byte (what its UART would have added)."""
    return bytes(b & 0x7F | _parity(b & 0x7F, kind) << 7 for b in data)
