"""Camera barcode decoding per 1280×720 frame: whole frame vs a region of interest, Code 128 only vs
every format, rotation on vs off, and a frame with no label (a no-read scans everything).

    .venv/bin/python bench/dev_camera.py [--runs 30]

Frames come from the camera simulator (a Code 128 waybill at 3 px per module, and a second parcel's
label elsewhere in the frame); decoding is `devices.drivers.camera.decode`, exactly what the driver
runs per capture, so the figures are the driver's. Baseline, same run: the region-of-interest crop
alone, and the evidence JPEG encode + sha256 that every capture also pays.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import zxingcpp  # noqa: E402

from devices.drivers.camera import Roi, crop, decode, save_evidence  # noqa: E402
from firmware_sim.camera import CameraSim  # noqa: E402

WAYBILL = "JD014600006123456789"


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm up (first call allocates zxing's buffers)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(runs: int = 30) -> list[tuple[str, float, str]]:
    """(what, median milliseconds, note) per case."""
    sim = CameraSim(WAYBILL, neighbour="SF1234567890123")
    frame = sim.frame()
    x, y, w, h = sim.label_box
    roi = Roi(x=x, y=y, w=w, h=h)
    empty = np.full_like(frame, 70)  # the belt with no parcel on it
    code128 = zxingcpp.barcode_formats_from_str("Code128")
    every = zxingcpp.barcode_formats_from_str("")  # empty set = every readable format

    def found(fmts: zxingcpp.BarcodeFormats, **kw: object) -> str:
        return ", ".join(sorted(r.text for r in decode(frame, fmts, **kw))) or "nothing"  # type: ignore[arg-type]

    with tempfile.TemporaryDirectory() as tmp:
        evidence = Path(tmp)
        cases: list[tuple[str, Callable[[], object], str]] = [
            ("decode whole frame, all formats", lambda: decode(frame, every), found(every)),
            ("decode whole frame, Code 128 only", lambda: decode(frame, code128), found(code128)),
            (
                "decode whole frame, Code 128 only, no rotation",
                lambda: decode(frame, code128, try_rotate=False),
                found(code128, try_rotate=False),
            ),
            ("decode ROI, Code 128 only", lambda: decode(frame, code128, roi=roi), found(code128, roi=roi)),
            (
                "decode ROI, Code 128 only, no rotation",
                lambda: decode(frame, code128, roi=roi, try_rotate=False),
                found(code128, roi=roi, try_rotate=False),
            ),
            ("no-read: empty frame, all formats", lambda: decode(empty, every), "nothing"),
            ("no-read: empty frame, Code 128 only", lambda: decode(empty, code128), "nothing"),
            ("baseline: ROI crop alone", lambda: crop(frame, roi), f"{w}×{h} of 1280×720"),
            (
                "baseline: evidence JPEG encode + sha256",
                lambda: save_evidence(frame, evidence),
                "q90, already stored",
            ),
        ]
        return [(name, _median_ms(fn, runs), note) for name, fn, note in cases]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    print(f"camera barcode decoding, 1280×720, median of {args.runs} runs")
    for name, ms, note in measure(args.runs):
        print(f"  {name:<48} {ms:8.2f} ms   {note}")


if __name__ == "__main__":
    main()
