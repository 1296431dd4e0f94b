"""An edge agent process with no central and no devices: a manual station `bench-1` typed into through
the local API, for tests of the API itself (logins, sessions, TLS, store failures) and of start-up.

Central's URL is a loopback port that is bound but never listens (`offline_central`): connections to
it are refused at once, the way an edge sees central while the uplink is down, and no other process
can take the port while the test holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from edge.auth import hash_password
from testkit.processes import AgentProcess

PASSWORDS = {"olga": "olga-pass", "sam": "sam-pass"}
_HASHES: dict[str, str] = {}


@contextlib.contextmanager
def offline_central() -> Iterator[str]:
    """A URL on which nothing answers (connection refused), held for the test's duration."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # bound, never listening
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def feed_key(path: Path) -> Path:
    """A fresh Ed25519 public key in PEM, standing in for central's feed key."""
    key = Ed25519PrivateKey.generate().public_key()
    path.write_bytes(
        key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path


def self_signed(tmp: Path, name: str = "api", host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for `host` and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bondgate edge test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _hash(name: str) -> str:
    if name not in _HASHES:
        _HASHES[name] = hash_password(PASSWORDS[name])
    return _HASHES[name]


def standalone_config(tmp: Path, central_url: str, **overrides: Any) -> dict[str, Any]:
    """edge.toml content: park P1, a device-less manual station, users olga (operator), sam (supervisor)."""
    key = tmp / "central-feed.pem"
    if not key.exists():
        feed_key(key)
    data: dict[str, Any] = {
        "park_id": "P1",
        "edge_id": "edge-p1",
        "database": tmp / "edge.db",
        "evidence_dir": tmp / "evidence",
        "heartbeat_s": 3600,
        "central": {"url": central_url, "token": "edge-token-for-tests", "public_key": key, "long_poll_s": 1},
        "api": {
            "host": "127.0.0.1",
            "port": 0,
            "users": [
                {"name": "olga", "role": "operator", "password_hash": _hash("olga")},
                {"name": "sam", "role": "supervisor", "password_hash": _hash("sam")},
            ],
        },
        "stations": [{"name": "bench-1", "kind": "manual"}],
    }
    for key_name, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key_name), dict):
            data[key_name] = {**data[key_name], **value}
        else:
            data[key_name] = value
    return data


async def api_url(agent: AgentProcess, timeout: float = 30) -> str:
    """The local API's base URL, from the agent's log (`api.port = 0` takes a free port)."""
    deadline = time.monotonic() + timeout
    while True:
        entry = agent.find("local API listening")
        if entry is not None:
            return str(entry["url"])
        if not agent.running:
            raise AssertionError(f"agent exited before its API was up:\n{agent.tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the agent's API was not up within {timeout} s:\n{agent.tail()}")
        await asyncio.sleep(0.02)
