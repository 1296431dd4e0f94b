"""Code 128 waybills skewed 0–90°: share decoded and ms per 1280×720 frame, before (`skew_search_ms = 0`:
zxing-cpp's pass alone) and after (the camera's default budget: every Code 128 read confirmed in two
bands of its bars, and bars searched at any angle when nothing is left). Run by hand:

    .venv/bin/python bench/camera_skew.py [--runs 3] [--labels 4] [--budget-ms 40]

Frames are drawn by testkit/code128_label.py — labels written from the Code 128 standard, not by
zxing-cpp's writer — on a parcel on a belt with printed clutter, sensor noise, a little perspective,
mild blur and JPEG q90. Per angle: `--labels` waybill numbers × two label geometries (the simulator's:
3 px per module, bars 27 % of the symbol's length; small and short: 2.2 px, 15 %) × two placements.
Decoding is `devices.drivers.camera.decode`, exactly what the driver runs per capture, whole frame,
Code 128 only, `try_rotate` on. Times are the median over frames of each frame's median of `--runs`.

Also: frames with no label, and `--damaged` labels with one bar a module too wide or too narrow (its
space takes up the difference), each at 0–90° in 15° steps: is a wrong code ever returned?
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import zxingcpp  # noqa: E402

from devices.drivers.camera import CameraConfig, decode  # noqa: E402
from testkit import code128_label as c128  # noqa: E402

CODE128 = zxingcpp.barcode_formats_from_str("Code128")
GEOMETRIES = ((3.0, 0.27), (2.2, 0.15))  # px per module, bar height as a share of the symbol's length


def waybill(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list("ABCDEFGHJKLMNPRSTUVWXYZ"), 2)) + "".join(
        map(str, rng.integers(0, 10, 13))
    )


def label(code: str, module_px: float, share: float, modules: list[int] | None = None) -> np.ndarray:
    length = (sum(c128.widths(c128.symbols(code))) + 2 * c128.QUIET_MODULES) * module_px
    return c128.label(code, module_px=module_px, height_px=round(length * share), modules=modules)


def timed(frame: np.ndarray, budget_ms: float, runs: int) -> tuple[list[str], float]:
    """The texts decoded and the median ms of `runs` decodes of one frame."""
    times, found = [], []
    for _ in range(runs):
        start = time.perf_counter()
        found = [d.text for d in decode(frame, CODE128, skew_search_ms=budget_ms)]
        times.append((time.perf_counter() - start) * 1000)
    return found, statistics.median(times)


def row(frames: list[tuple[str | None, np.ndarray]], budget_ms: float, runs: int) -> dict[str, float]:
    """Share read, wrong codes and median ms, before (budget 0) and after, over `frames`."""
    out: dict[str, float] = {}
    for name, ms in (("before", 0.0), ("after", budget_ms)):
        read = wrong = 0
        times = []
        for code, frame in frames:
            found, t = timed(frame, ms, runs)
            times.append(t)
            read += code is not None and code in found
            wrong += sum(1 for text in found if text != code)
        out[f"{name}_read"] = read / len(frames)
        out[f"{name}_wrong"] = wrong
        out[f"{name}_ms"] = statistics.median(times)
        out[f"{name}_p90"] = float(np.percentile(times, 90))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--labels", type=int, default=4)
    parser.add_argument("--budget-ms", type=float, default=CameraConfig(source=0).skew_search_ms)
    parser.add_argument("--step", type=int, default=5)
    parser.add_argument("--damaged", type=int, default=60, help="labels with a damaged bar (7 angles each)")
    args = parser.parse_args()
    rng = np.random.default_rng(2025)
    codes = [waybill(rng) for _ in range(args.labels)]
    labels = [(code, label(code, px, share)) for code in codes for px, share in GEOMETRIES]
    print(
        f"# {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"OpenCV {cv2.__version__}, zxing-cpp {version('zxing-cpp')}; budget {args.budget_ms:g} ms; "
        f"{len(labels) * 2} frames per angle; median of {args.runs} runs per frame"
    )
    print("| skew | read before | read after | ms before (first pass) | ms after (with the search) |")
    print("|---:|---:|---:|---:|---:|")
    everything: list[tuple[str | None, np.ndarray]] = []
    for angle in range(0, 91, args.step):
        frames: list[tuple[str | None, np.ndarray]] = [
            (code, c128.scene(lbl, angle, seed=angle * 100 + i * 2 + k))
            for i, (code, lbl) in enumerate(labels)
            for k in range(2)
        ]
        everything += frames
        r = row(frames, args.budget_ms, args.runs)
        print(
            f"| {angle}° | {r['before_read']:.0%} | {r['after_read']:.0%} | {r['before_ms']:.1f} | "
            f"{r['after_ms']:.1f} (p90 {r['after_p90']:.1f}) |"
        )
    r = row(everything, args.budget_ms, 1)
    print(
        f"| all | {r['before_read']:.0%} | {r['after_read']:.0%} | {r['before_ms']:.1f} | "
        f"{r['after_ms']:.1f} (p90 {r['after_p90']:.1f}) |"
    )
    print(
        f"wrong codes: before {r['before_wrong']:.0f}, after {r['after_wrong']:.0f} "
        f"of {len(everything)} frames"
    )
    empty = [(None, c128.scene(None, 0, seed=seed)) for seed in range(16)]
    r = row(empty, args.budget_ms, args.runs)
    print(
        f"no label ({len(empty)} frames): anything read before {r['before_wrong']:.0f}, after "
        f"{r['after_wrong']:.0f}; ms before {r['before_ms']:.1f}, after {r['after_ms']:.1f}"
    )
    damaged: list[tuple[str | None, np.ndarray]] = []
    for i in range(args.damaged):
        code = waybill(rng)
        px, share = GEOMETRIES[i % 2]
        lbl = label(code, px, share, c128.corrupt(c128.symbols(code), rng))
        damaged += [(code, c128.scene(lbl, a, seed=int(rng.integers(1 << 30)))) for a in range(0, 91, 15)]
    r = row(damaged, args.budget_ms, 1)
    print(
        f"one bar damaged ({len(damaged)} frames): wrong codes before {r['before_wrong']:.0f}, after "
        f"{r['after_wrong']:.0f}; still read right before {r['before_read']:.0%}, "
        f"after {r['after_read']:.0%}; "
        f"ms before {r['before_ms']:.1f}, after {r['after_ms']:.1f}"
    )


if __name__ == "__main__":
    main()
