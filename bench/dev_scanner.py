"""Scanner parser throughput, in frames per second.

    .venv/bin/python bench/dev_scanner.py

The parser eats a large synthetic stream (frames built by the protocol module's own encoder: Code
128 waybills, GS1-128 SSCCs, EAN-13s and a few NOREADs, CR or CR LF terminated) fed whole, then in
64-byte chunks (a USB-serial adapter hands over about that much at a time), and every event is
pulled out; once more with carrier patterns configured. Next to it, in the same run, a baseline:
the least any Python parser of CR/LF lines can do — `bytes.splitlines()` and a decode per line.
The gap is what AIM ids, noise checks, typed events and chunk-independent framing cost. A scanner
sends a few frames per second; these figures say how much headroom one CPU core has.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devices.protocols.need_data import NEED_DATA  # noqa: E402
from devices.protocols.scanner import (  # noqa: E402
    ScannerParser,
    ScannerProtocolConfig,
    encode_frame,
)

FRAMES = 100_000
CHUNK = 64
RUNS = 3
CARRIERS = {"jd": r"JD\d{18}", "sf": r"SF\d{12}", "sscc": r"00\d{18}"}


def stream(n: int = FRAMES) -> bytes:
    """n frames: waybills, SSCCs, EANs and every 50th a NOREAD; CR, and every third CR LF."""
    out = bytearray()
    for i in range(n):
        terminator = b"\r\n" if i % 3 == 0 else b"\r"
        if i % 50 == 49:
            out += b"NOREAD" + terminator
        elif i % 4 == 0:
            out += encode_frame(f"00{376123450000000000 + i:018d}", aim="]C1", terminator=terminator)
        elif i % 4 == 1:
            out += encode_frame(f"400638{i % 10_000_000:07d}", aim="]E0", terminator=terminator)
        else:
            out += encode_frame(f"JD{14600006000000000 + i:018d}", aim="]C0", terminator=terminator)
    return bytes(out)


def _parse(config: ScannerProtocolConfig, data: bytes, chunk: int | None) -> int:
    parser = ScannerParser(config)
    events = 0
    step = chunk or len(data)
    for start in range(0, len(data), step):
        parser.receive_data(data[start : start + step], 0.0)
        while parser.next_event() is not NEED_DATA:
            events += 1
    return events


def _baseline(data: bytes) -> int:
    count = 0
    for line in data.splitlines():
        if line:
            line.decode()
            count += 1
    return count


def _rate(work: Callable[[], int]) -> float:
    """Events per second, best of RUNS (the least disturbed run)."""
    best = 0.0
    for _ in range(RUNS):
        started = time.perf_counter()
        events = work()
        best = max(best, events / (time.perf_counter() - started))
    return best


def measure() -> list[tuple[str, float, str]]:
    """(name, value, unit) for each way of feeding the parser and the same-run baseline."""
    data = stream()
    plain = ScannerProtocolConfig()
    carriers = ScannerProtocolConfig(carriers=CARRIERS)
    assert _parse(plain, data, CHUNK) == _parse(plain, data, None) == _baseline(data) == FRAMES
    return [
        ("scanner.parse_whole", _rate(lambda: _parse(plain, data, None)), "frames/s"),
        ("scanner.parse_64B_chunks", _rate(lambda: _parse(plain, data, CHUNK)), "frames/s"),
        ("scanner.parse_64B_chunks_carriers", _rate(lambda: _parse(carriers, data, CHUNK)), "frames/s"),
        ("scanner.baseline_splitlines", _rate(lambda: _baseline(data)), "frames/s"),
    ]


if __name__ == "__main__":
    for name, value, unit in measure():
        print(f"{name:42} {value:>14,.0f} {unit}")
