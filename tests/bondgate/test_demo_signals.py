"""`bondgate demo` stopped by a service manager (SIGTERM) or a closed terminal (SIGHUP) stops
Mosquitto, central and the edge agent on its way out, as Ctrl-C does, and leaves no orphan."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

START_S = 120.0  # bounds on conditions, not timings: the demo's three children up, then the demo gone
EXIT_S = 60.0


def children_of(pid: int) -> set[int]:
    """The live processes whose parent is `pid` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False  # a zombie: ended, not yet reaped
    return True


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_the_demo_stops_its_children_on_a_signal(tmp_path: Path, signum: signal.Signals) -> None:
    log = (tmp_path / "demo.out").open("wb")
    demo = subprocess.Popen(
        [sys.executable, "-m", "bondgate.cli", "demo", "--parcels", "4", "--rate", "8", "--keep"],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    children: set[int] = set()
    try:
        deadline = time.monotonic() + START_S
        while len(children) < 3:  # Mosquitto, central and the edge agent
            assert demo.poll() is None, (tmp_path / "demo.out").read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the demo never started its three children"
            children |= children_of(demo.pid)
            time.sleep(0.2)
        demo.send_signal(signum)
        demo.wait(timeout=EXIT_S)
        left = {pid for pid in children if alive(pid)}
        assert left == set(), f"left running after {signum.name}: {left}"
    finally:
        for pid in [demo.pid, *children]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        demo.wait(timeout=EXIT_S)
        log.close()
