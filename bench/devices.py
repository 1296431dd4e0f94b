"""Device-layer benchmarks (issue 3), each next to a same-run baseline.

    .venv/bin/python bench/devices.py [--runs 3]

- scanner, MT-SICS and Toledo parsers: frames/s over large synthetic streams (bench/dev_scanner.py,
  bench/dev_scales.py), next to a bare split/slice of the same bytes;
- Modbus write-and-confirm round trip of the gate-I/O driver, next to a bare pymodbus client doing
  write_coil + read_coils against the same simulator (bench/dev_modbus.py);
- barcode decode time per 1280×720 frame, whole frame and with a region of interest
  (bench/dev_camera.py).
Each part runs `--runs` times; the median of each figure is printed.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import dev_camera, dev_modbus, dev_scales, dev_scanner

PARTS = {
    "scanner": dev_scanner.measure,
    "scales": dev_scales.measure,
    "modbus": dev_modbus.measure,
    "camera": dev_camera.measure,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=sorted(PARTS), action="append")
    args = parser.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"median of {args.runs} runs"
    )
    for name, measure in PARTS.items():
        if args.only and name not in args.only:
            continue
        values: dict[str, list[float]] = defaultdict(list)
        units: dict[str, str] = {}
        for _ in range(args.runs):
            for row in measure():
                what, value, unit = row[0], float(row[1]), str(row[2])
                values[what].append(value)
                units[what] = unit
        print(f"\n## {name}")
        for what, series in values.items():
            unit = f"ms ({units[what]})" if name == "camera" else units[what]
            print(f"{what:<60} {statistics.median(series):>14,.3f}  {unit}")


if __name__ == "__main__":
    main()
