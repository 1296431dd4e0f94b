"""https to central (edge/central_client.py, `[central]` in edge.toml): a real uvicorn central served
with a certificate made here by a CA made here. The right CA bundle or pin syncs; a wrong CA or pin
is refused — for a pin, before a byte of HTTP (the edge token) leaves — and the refusal shows in the
sync's `last_error` (/api/status) and its log line. Settings that would fall back to plaintext are
refused at start, naming the key."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.central_client import build_client
from edge.config import CentralLink, EdgeSettings
from edge.store import Store
from edge.sync import FeedSync
from kernel.config import ConfigError, load_settings, toml_dumps
from kernel.wire import load_public_key
from testkit import factories
from testkit.central_server import run_central


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca(directory: Path, name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def make_server(directory: Path, ca_key: Any, ca_cert: x509.Certificate) -> tuple[Path, Path, bytes]:
    """A certificate for 127.0.0.1 and localhost signed by the CA: (cert PEM, key PEM, cert DER)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("central.test"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "central.crt", directory / "central.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path, cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    ca_key, ca_cert, ca = make_ca(tmp_path, "park-ca")
    _, _, other_ca = make_ca(tmp_path, "other-ca")
    cert, key, der = make_server(tmp_path, ca_key, ca_cert)
    spki = (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return {
        "ca": ca,
        "other_ca": other_ca,
        "cert": cert,
        "key": key,
        "cert_pin": ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest()),  # as openssl prints it
        "key_pin": hashlib.sha256(spki).hexdigest(),
    }


def _link(url: str, token: str, tmp: Path, **tls: Any) -> CentralLink:
    key = tmp / "feed.pem"
    return CentralLink(url=url, token=token, public_key=key, **tls)


async def _sync_once(link: CentralLink, tmp: Path, name: str) -> FeedSync:
    store = Store(tmp / f"{name}.db")
    key = load_public_key((tmp / "feed.pem").read_bytes())
    async with build_client(link) as client:
        sync = FeedSync(store=store, client=client, park_id="P1", public_key=key, backoff_initial=0.01)
        try:
            await sync.catch_up()
        finally:
            sync.close()
            store.close()
    return sync


def test_the_right_ca_or_pin_syncs_over_https_and_a_wrong_one_is_refused(
    tmp_path: Path, pki: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with run_central(tmp_path / "c", tls=(pki["cert"], pki["key"])) as central:
        assert central.url.startswith("https://")
        with httpx.Client(base_url=central.url, verify=ssl.create_default_context(cafile=pki["ca"])) as c:
            (tmp_path / "feed.pem").write_text(c.get("/.well-known/bondgate/feed-key.pem").text)
            sets = factories.document_set(3, start=1)
            batch = {"documents": [d.model_dump(mode="json") for s in sets for d in s.documents]}
            c.post(
                "/api/v1/documents",
                json=batch,
                headers={"Authorization": f"Bearer {central.tokens['enterprise']}"},
            ).raise_for_status()
        token = central.tokens["edge"]
        good = [
            {"ca_file": pki["ca"]},
            {"pin_sha256": [pki["cert_pin"]]},
            {"pin_sha256": ["00" * 32, pki["key_pin"]]},  # the key's digest survives a re-issued certificate
            {"ca_file": pki["ca"], "pin_sha256": [pki["key_pin"]]},
        ]
        for i, tls in enumerate(good):
            sync = asyncio.run(_sync_once(_link(central.url, token, tmp_path, **tls), tmp_path, f"good{i}"))
            assert sync.status.checkpoint_count == 3, tls

        bad = [
            ({"ca_file": pki["other_ca"]}, "CERTIFICATE_VERIFY_FAILED"),
            ({"pin_sha256": ["ab" * 32]}, "matches no central.pin_sha256"),
            ({"ca_file": pki["ca"], "pin_sha256": ["ab" * 32]}, "matches no central.pin_sha256"),
        ]
        for i, (tls, why) in enumerate(bad):
            with pytest.raises(httpx.ConnectError, match=why):
                asyncio.run(_sync_once(_link(central.url, token, tmp_path, **tls), tmp_path, f"bad{i}"))

        # the running sync keeps retrying, and says why where an operator looks
        async def running() -> str | None:
            link = _link(central.url, token, tmp_path, pin_sha256=["cd" * 32])
            store = Store(tmp_path / "running.db")
            key = load_public_key((tmp_path / "feed.pem").read_bytes())
            async with build_client(link) as client:
                sync = FeedSync(
                    store=store, client=client, park_id="P1", public_key=key, backoff_initial=0.01
                )
                task = asyncio.create_task(sync.run())
                try:
                    async with asyncio.timeout(20):
                        while sync.status.consecutive_failures < 2:
                            await asyncio.sleep(0.01)
                finally:
                    task.cancel()
                    sync.close()
            assert store.sync_state()["cursor"] == 0
            store.close()
            return sync.status.last_error

        with caplog.at_level("WARNING", logger="edge.sync"):
            last_error = asyncio.run(running())
        assert last_error is not None and "ConnectError" in last_error and "pin_sha256" in last_error
        [logged] = [r for r in caplog.records if r.getMessage() == "feed sync failing; deciding on the cache"]
        assert "pin_sha256" in logged.error  # type: ignore[attr-defined]


class _TlsListener:
    """A bare TLS server with the central certificate that records every byte a client sends."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.handshakes = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.settimeout(10)
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                self.handshakes += 1
                while chunk := tls.recv(4096):
                    self.received += chunk
                    if b"\r\n\r\n" in self.received:
                        tls.sendall(b"HTTP/1.1 500 x\r\ncontent-length: 0\r\n\r\n")
                        break
        except (OSError, ssl.SSLError):
            pass

    def close(self) -> None:
        self.thread.join(timeout=15)
        self.sock.close()


@pytest.mark.parametrize("pinned", ["right", "wrong"])
def test_a_wrong_pin_ends_the_connection_before_the_token_is_sent(
    tmp_path: Path, pki: dict[str, Any], pinned: str
) -> None:
    listener = _TlsListener(pki["cert"], pki["key"])
    pin = pki["cert_pin"] if pinned == "right" else "ef" * 32
    link = CentralLink(
        url=f"https://127.0.0.1:{listener.port}",
        token="edge-secret-token",
        public_key=tmp_path / "k",
        pin_sha256=[pin],
    )

    async def call() -> None:
        async with build_client(link) as client:
            await client.get("/api/v1/parks/P1/feed")

    if pinned == "right":
        asyncio.run(call())
    else:
        with pytest.raises(httpx.ConnectError, match=r"matches no central\.pin_sha256"):  # in the handshake
            asyncio.run(call())
    listener.close()
    if pinned == "right":
        assert listener.handshakes == 1 and b"Bearer edge-secret-token" in listener.received
    else:
        assert listener.received == b""  # not one byte of HTTP: the token never left


BASE = {
    "park_id": "P1",
    "edge_id": "edge-1",
    "central": {"url": "https://central.example:8600", "token": "t" * 12, "public_key": "feed.pem"},
}


@pytest.mark.parametrize(
    ("central", "named"),
    [
        ({"url": "http://central.example:8600", "ca_file": "CA"}, "need an https:// url"),
        ({"url": "http://127.0.0.1:8600", "pin_sha256": ["ab" * 32]}, "need an https:// url"),
        ({"url": "http://central.example:8600"}, "plain http to central.example"),
        ({"url": "ftp://central.example"}, "not an http:// or https:// URL"),
        ({"pin_sha256": ["ab" * 31]}, "central.pin_sha256.0"),
        ({"pin_sha256": ["sha256/" + "zz" * 32]}, "not a SHA-256 digest"),
        ({"ca_file": "missing.pem"}, "central.ca_file"),
        ({"ca_file": "NOT_PEM"}, "not a PEM bundle"),
    ],
)
def test_settings_that_would_send_plaintext_or_cannot_verify_are_refused_at_start(
    tmp_path: Path, pki: dict[str, Any], central: dict[str, Any], named: str
) -> None:
    (tmp_path / "not.pem").write_text("hello")
    swap = {
        "CA": str(pki["ca"]),
        "NOT_PEM": str(tmp_path / "not.pem"),
        "missing.pem": str(tmp_path / "missing.pem"),
    }
    data = {
        **BASE,
        "central": {
            **BASE["central"],
            **{k: swap.get(v, v) if isinstance(v, str) else v for k, v in central.items()},
        },
    }
    path = tmp_path / "edge.toml"
    path.write_text(toml_dumps(data))
    with pytest.raises(ConfigError, match=named):
        load_settings(EdgeSettings, path)


def test_plain_http_is_for_this_machine_or_an_explicit_demo(tmp_path: Path) -> None:
    for central in (
        {"url": "http://127.0.0.1:8600"},
        {"url": "http://localhost:8600"},
        {"url": "http://central:8600", "insecure_plain_http": True},
        {"url": "https://central.example:8600"},
    ):
        path = tmp_path / "edge.toml"
        path.write_text(toml_dumps({**BASE, "central": {**BASE["central"], **central}}))
        assert load_settings(EdgeSettings, path).central.url == central["url"]


def test_a_proxy_in_the_environment_is_never_used(
    tmp_path: Path, central: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by an outside tester: with HTTP_PROXY or ALL_PROXY set for the agent, "plain http to this
    machine" went to a proxy elsewhere, token and feed in the clear. The client to central goes where
    [central] url says: here a proxy that accepts nothing, and the request still reaches central."""
    from edge.config import CentralLink

    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))  # bound, never listening: any use of the proxy fails
        proxy = f"http://127.0.0.1:{dead.getsockname()[1]}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        key = tmp_path / "feed.pem"
        key.write_text(httpx.get(f"{central.url}/.well-known/bondgate/feed-key.pem", trust_env=False).text)
        link = CentralLink(url=central.url, token=central.tokens["edge"], public_key=key)

        async def ask() -> int:
            async with build_client(link) as client:
                return (await client.get("/api/v1/parks/P1/feed", params={"limit": 1})).status_code

        assert asyncio.run(ask()) == 200
