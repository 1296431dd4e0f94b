"""A real Mosquitto broker for a test: its own config, a free loopback port, stopped afterwards.

Anonymous by default. `username`/`password` (one login) or `users` (several) make it authenticated
with a fresh password file; `password_file` uses an existing hashed one (deploy/mosquitto.passwd).
`acl` (a path to an ACL file, or the ACL's text) turns on Mosquitto's `acl_file`: then every login
may only do what the file grants it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bondgate.processes import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@dataclass
class Broker:
    host: str
    port: int
    username: str | None
    password: str | None
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_broker(
    tmp: Path,
    *,
    username: str | None = None,
    password: str | None = None,
    port: int | None = None,
    users: Mapping[str, str] | None = None,
    password_file: Path | None = None,
    acl: Path | str | None = None,
) -> Broker:
    port = port or free_port()
    lines = [
        f"listener {port} 127.0.0.1",
        "user root",
        "persistence false",
        f"log_dest file {tmp / 'mosquitto.log'}",
    ]
    logins = dict(users or {})
    if username:
        logins[username] = password or ""
    if logins and password_file is not None:
        raise ValueError("give users/username or a password_file, not both")
    if logins:
        password_file = tmp / "passwd"
        password_file.write_text("")
        for name, secret in logins.items():
            subprocess.run(["mosquitto_passwd", "-b", str(password_file), name, secret], check=True)
    if password_file is not None:
        lines += ["allow_anonymous false", f"password_file {password_file}"]
    else:
        lines += ["allow_anonymous true"]
    if acl is not None:
        if isinstance(acl, str):
            (tmp / "acl").write_text(acl)
            acl = tmp / "acl"
        lines.append(f"acl_file {acl}")
    conf = tmp / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"mosquitto did not start: {err}") from None
            time.sleep(0.02)
    return Broker("127.0.0.1", port, username, password, proc, tmp / "mosquitto.log")


@contextmanager
def running_broker(tmp: Path, **kw: object) -> Iterator[Broker]:
    broker = start_broker(tmp, **kw)  # type: ignore[arg-type]
    try:
        yield broker
    finally:
        broker.stop()
