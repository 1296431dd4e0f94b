"""What a bench ran on, for the first line of its output and BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess


def machine() -> str:
    model = "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(x.split(":", 1)[1].strip() for x in out.splitlines() if x.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    return (
        f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.release()}"
    )
