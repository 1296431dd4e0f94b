"""`bondgate edge run` refuses a configuration it cannot run on — as the process an operator starts:
one line on stderr naming the key, exit code 2, no traceback, nothing started.

Settings that do not validate (types, references, I/O points: tests/edge/test_config.py) and what
only the machine can say (edge/startup.py): central's key file, the database and evidence
directories, the API's certificate and key, the API's address.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kernel.config import toml_dumps
from testkit.processes import edge_cli
from testkit.standalone_edge import offline_central, self_signed, standalone_config

ROOT = os.geteuid() == 0

Mutate = Callable[[Path, dict[str, Any]], None]


# --- files the cases need ---------------------------------------------------------------------------


@contextlib.contextmanager
def read_only_dir(path: Path) -> Iterator[Path]:
    """A directory this process cannot write in: a read-only tmpfs when root (root ignores the mode
    bits), the mode bits otherwise."""
    path.mkdir(parents=True, exist_ok=True)
    if ROOT:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], capture_output=True, timeout=10
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a read-only tmpfs: {done.stderr.decode().strip()}")
        try:
            yield path
        finally:
            subprocess.run(["umount", str(path)], capture_output=True, timeout=10)
    else:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)


def _set(*keys: str, value: Any) -> Mutate:
    def mutate(tmp: Path, data: dict[str, Any]) -> None:
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value(tmp) if callable(value) else value

    return mutate


def _key_file(content: Callable[[], bytes]) -> Mutate:
    def mutate(tmp: Path, data: dict[str, Any]) -> None:
        path = tmp / "wrong-key.pem"
        path.write_bytes(content())
        data["central"]["public_key"] = path

    return mutate


def _rsa_public() -> bytes:
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _ed25519_private() -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _a_file(tmp: Path) -> Path:
    path = tmp / "a-file.txt"
    path.write_text("not a directory\n")
    return path


def _not_sqlite(tmp: Path) -> Path:
    path = tmp / "notes.db"
    path.write_text("these are my notes, not a database\n" * 10)
    return path


def _tls(cert: Callable[[Path], Path] | None = None, key: Callable[[Path], Path] | None = None) -> Mutate:
    def mutate(tmp: Path, data: dict[str, Any]) -> None:
        good_cert, good_key = self_signed(tmp)
        data["api"]["tls_cert"] = cert(tmp) if cert else good_cert
        data["api"]["tls_key"] = key(tmp) if key else good_key

    return mutate


def _other_key(tmp: Path) -> Path:
    return self_signed(tmp, "other")[1]


def _fifo(tmp: Path) -> Path:
    path = tmp / "key.fifo"
    os.mkfifo(path)  # reading it would wait for a writer for ever
    return path


def _mqtt_with_bad_ca(tmp: Path) -> dict[str, Any]:
    return {"broker": {"host": "127.0.0.1", "port": 1883, "tls": {"ca": _not_sqlite(tmp)}}}


BAD_USER = {"name": "olga", "role": "operator", "password_hash": "olga-pass"}  # a password, not its hash


def _io_station(tmp: Path, data: dict[str, Any]) -> None:
    data["devices"] = {
        "io1": {
            "driver": "gateio",
            "endpoint": {"kind": "tcp", "host": "127.0.0.1", "port": 5020},
            "io": {
                "profile": "e1212",
                "inputs": {"photo_eye_1": 0, "loop": 2},
                "outputs": {"diverter_left": 1},
            },
        },
        "line_scanner": {"driver": "scanner", "url": "socket://127.0.0.1:7001", "dedupe_window_s": 0},
    }
    data["stations"].append(
        {
            "name": "line-1",
            "kind": "conveyor",
            "io": "io1",
            "photo_eye": "photo_eye_9",
            "diverter": {"release": "diverter_left"},
            "scanner": "line_scanner",
            "tracking": {"scanner": {"from_s": 0, "to_s": 0.1}, "diverter": {"from_s": 1, "to_s": 1.2}},
        }
    )


def _output_as_input(tmp: Path, data: dict[str, Any]) -> None:
    _io_station(tmp, data)
    data["stations"][-1]["photo_eye"] = "diverter_left"


KEY = "central.public_key"
# (id, mutation of the config, the key named, a fragment of the reason)
CASES: list[tuple[str, Mutate, str, str]] = [
    ("photo-eye misnamed", _io_station, "stations.1.photo_eye", "no input 'photo_eye_9' on device 'io1'"),
    ("output as input", _output_as_input, "stations.1.photo_eye", "is an output, not an input"),
    ("key missing", _set("central", "public_key", value=lambda t: t / "nowhere.pem"), KEY, "no such file"),
    ("key is a dir", _set("central", "public_key", value=lambda t: t), KEY, "is a directory"),
    ("key unreadable", _set("central", "public_key", value=lambda t: _a_file(t) / "k"), KEY, "cannot read"),
    ("key not PEM", _key_file(lambda: b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 c\n"), KEY, "not a PEM public key"),
    ("key empty", _key_file(lambda: b""), KEY, "not a PEM public key"),
    ("key RSA", _key_file(_rsa_public), KEY, "holds an RSA key, not central's Ed25519 feed key"),
    ("key private", _key_file(_ed25519_private), KEY, "holds a private key"),
    ("db below a file", _set("database", value=lambda t: _a_file(t) / "e.db"), "database", "is a file, not"),
    ("db is a dir", _set("database", value=lambda t: t), "database", "is a directory, not a database file"),
    ("db not sqlite", _set("database", value=_not_sqlite), "database", "is not an SQLite database"),
    ("evidence is a file", _set("evidence_dir", value=_a_file), "evidence_dir", "is a file, not a directory"),
    ("tls cert alone", _set("api", "tls_cert", value=lambda t: self_signed(t)[0]), "api.tls_key", "together"),
    ("tls cert not PEM", _tls(cert=_not_sqlite), "api.tls_cert", "is not a PEM certificate"),
    ("tls key missing", _tls(key=lambda t: t / "none.key"), "api.tls_key", "no such file"),
    ("tls key of another cert", _tls(key=_other_key), "api.tls_key", "does not match api.tls_cert"),
    ("api not ours", _set("api", "host", value="192.0.2.1"), "api.host", "cannot listen on 192.0.2.1:0"),
    ("hash malformed", _set("api", "users", value=[BAD_USER]), "api.users.0.password_hash", "not a password"),
    ("type", _set("heartbeat_s", value="often"), "heartbeat_s", "valid number"),
    ("unknown key", _set("databse", value="x.db"), "databse", "Extra inputs are not permitted"),
    ("station kind", _set("stations", value=[{"name": "b", "kind": "bench"}]), "stations.0.kind", "'bench'"),
    ("key /dev/zero", _set("central", "public_key", value="/dev/zero"), KEY, "is not a regular file"),
    ("key a FIFO", _set("central", "public_key", value=_fifo), KEY, "is not a regular file"),
    ("NUL in a path", _set("database", value="edge\x00.db"), "database", "contains a NUL character"),
    ("log level", _set("log_level", value="LOUD"), "log_level", "'LOUD' is no log level"),
    (
        "central url",
        _set("central", "url", value="central:8600"),
        "central.url",
        "not an http:// or https://",
    ),
    ("mqtt CA not PEM", _set("mqtt", value=_mqtt_with_bad_ca), "mqtt.broker.tls.ca", "holds no PEM cert"),
]


def refused(config: Path) -> str:
    """Run the agent on `config`; it must refuse it: exit 2, one line on stderr, nothing else."""
    done = edge_cli("run", "--config", str(config), timeout=30)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1, (done.returncode, done.stderr, done.stdout)
    assert done.stdout == ""
    return lines[0]


@pytest.mark.parametrize(("mutate", "key", "why"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_edge_run_refuses_a_configuration_it_cannot_run_on(
    tmp_path: Path, mutate: Mutate, key: str, why: str
) -> None:
    with offline_central() as central:
        data = standalone_config(tmp_path, central)
        mutate(tmp_path, data)
        config = tmp_path / "edge.toml"
        config.write_text(toml_dumps(data), encoding="utf-8")
        line = refused(config)
    assert line.startswith(f"{config}: {key}: "), line
    assert why in line, line


def test_unwritable_database_and_evidence_directories(tmp_path: Path) -> None:
    with offline_central() as central, read_only_dir(tmp_path / "ro") as ro:
        for key, value in (("database", ro / "edge.db"), ("evidence_dir", ro / "evidence")):
            data = standalone_config(tmp_path, central, **{key: value})
            config = tmp_path / "edge.toml"
            config.write_text(toml_dumps(data), encoding="utf-8")
            line = refused(config)
            assert line.startswith(f"{config}: {key}: "), line
            assert "Read-only file system" in line or "Permission denied" in line, line


@pytest.mark.skipif(ROOT, reason="root reads any file whatever its mode")
def test_an_unreadable_key_file(tmp_path: Path) -> None:
    with offline_central() as central:
        data = standalone_config(tmp_path, central)
        Path(data["central"]["public_key"]).chmod(0)
        config = tmp_path / "edge.toml"
        config.write_text(toml_dumps(data), encoding="utf-8")
        line = refused(config)
    assert line.startswith(f"{config}: central.public_key: cannot read") and "Permission denied" in line


def test_the_api_port_in_use(tmp_path: Path) -> None:
    with offline_central() as central, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = standalone_config(tmp_path, central, api={"port": port})
        config = tmp_path / "edge.toml"
        config.write_text(toml_dumps(data), encoding="utf-8")
        line = refused(config)
    assert line == f"{config}: api.port: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    """Everything the machine has to say is said at once, one line per key."""
    with offline_central() as central:
        data = standalone_config(tmp_path, central, database=tmp_path, evidence_dir=_a_file(tmp_path))
        data["central"]["public_key"] = tmp_path / "nowhere.pem"
        config = tmp_path / "edge.toml"
        config.write_text(toml_dumps(data), encoding="utf-8")
        done = edge_cli("run", "--config", str(config), timeout=30)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    keys = [line.removeprefix(f"{config}: ").split(":")[0] for line in done.stderr.splitlines()]
    assert keys == ["central.public_key", "database", "evidence_dir"]


def test_the_api_socket_gets_tcp_nodelay() -> None:
    """The socket the agent binds for uvicorn says it is TCP, so asyncio turns Nagle off on each
    connection (a socket made with protocol 0 kept it on: every response waited for a delayed ACK)."""
    from edge.config import LocalApi
    from edge.startup import listen

    async def scenario() -> int:
        sock = listen(LocalApi(port=0))
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            seen.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            async with asyncio.timeout(10):
                nodelay = await seen
            writer.close()
        return nodelay

    assert asyncio.run(scenario()) == 1
