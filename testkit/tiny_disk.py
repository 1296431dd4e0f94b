"""A disk that fills up for real: a small tmpfs that only the agent process sees.

`unshare -Urm` gives the agent a user and mount namespace of its own (no privileges needed where
unprivileged user namespaces are allowed), in which a tmpfs of a few megabytes is mounted over a
folder of the test's; the agent keeps its database there. The test reaches that filesystem through
`/proc/<agent pid>/root/…` and fills it (`fill`: a file that takes every free block, so the next
write that needs space gets ENOSPC and SQLite answers SQLITE_FULL) or frees it (`free`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

NSENTER = ["nsenter", "--user", "--mount", "--preserve-credentials"]
MOUNT = 'mount -t tmpfs -o size="$1" tmpfs "$0" && shift && exec "$@"'


@functools.cache
def unavailable() -> str | None:
    """Why a tiny disk cannot be made here, or None when it can."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return "no unshare(1) or nsenter(1)"
    with tempfile.TemporaryDirectory() as folder:
        probe = subprocess.run(
            ["unshare", "-Urm", "sh", "-c", MOUNT, folder, "1m", "true"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    if probe.returncode != 0:
        return f"cannot mount a tmpfs in a user namespace: {probe.stderr.strip()[:200]}"
    return None


class TinyDisk:
    def __init__(self, mount_point: Path, size: str = "16m") -> None:
        self.mount_point = mount_point
        self.size = size
        self.pid: int | None = None  # the process whose namespace holds the tmpfs
        mount_point.mkdir(parents=True, exist_ok=True)

    def wrap(self) -> list[str]:
        """The command prefix that runs a program with the tmpfs mounted at `mount_point`."""
        return ["unshare", "-Urm", "sh", "-c", MOUNT, str(self.mount_point), self.size]

    def outside(self, name: str = "") -> Path:
        """A path on the tmpfs, as the test (outside the namespace) reaches it."""
        assert self.pid is not None, "set .pid to the process that mounted the tmpfs"
        return Path(f"/proc/{self.pid}/root") / self.mount_point.relative_to("/") / name

    def fill(self) -> None:
        """Take every free block (the filesystem is full afterwards)."""
        fd = os.open(self.outside("filler"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9):  # large writes, then the last blocks
                with contextlib.suppress(OSError):  # ENOSPC: nothing more of this size fits
                    while os.write(fd, b"\0" * size) == size:
                        pass
        finally:
            os.close(fd)

    def free(self) -> None:
        self.outside("filler").unlink(missing_ok=True)


PIN = """
import sqlite3, sys, time
from pathlib import Path
database = sys.argv[1]
conn = sqlite3.connect(database, isolation_level=None, timeout=10)
deadline = time.monotonic() + 10
while conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] != 0:  # busy: again
    assert time.monotonic() < deadline, "could not checkpoint the database"
    time.sleep(0.01)
wal = Path(database + "-wal")
while not wal.exists() or wal.stat().st_size == 0:  # the agent commits within a heartbeat
    assert time.monotonic() < deadline, "nothing written to the log"
    time.sleep(0.01)
conn.execute("BEGIN")
conn.execute("SELECT COUNT(*) FROM outbox").fetchone()
print("pinned", flush=True)
sys.stdin.read()  # until the test closes it
"""


class WalPin:
    """A reader process in the agent's namespace (SQLite resolves symlinks in a database path, so
    /proc/<pid>/root/… would open the test's own folder instead): it empties the database's
    write-ahead log, then holds a read transaction once the log has frames again. SQLite may not
    start the log over while a reader uses it, so every later commit appends to the log file and
    needs new space (an overwrite of a log started over would need none)."""

    def __init__(self, disk: TinyDisk, name: str) -> None:
        assert disk.pid is not None
        self.proc = subprocess.Popen(
            [*NSENTER, f"--target={disk.pid}", sys.executable, "-c", PIN, str(disk.mount_point / name)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # bounded: the script asserts within 10 s
        if line.strip() != "pinned":
            self.close()
            raise RuntimeError(f"could not pin the log: {line!r} (exit {self.proc.returncode})")

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
