"""The agent's HTTP client to central: TLS with a CA bundle and/or a pinned certificate, never plaintext
by accident.

`[central]` in edge.toml (edge/config.py `CentralLink`) decides:

* `https://` with `ca_file`: central's certificate must chain to one of those CAs and name the host;
* `https://` with `pin_sha256`: the certificate (its DER) or its public key (SubjectPublicKeyInfo DER)
  must have one of those SHA-256 digests. With `ca_file` too, both must hold; without, the pin alone
  is the check (a self-signed certificate, an address instead of a name);
* `https://` with neither: the usual public CAs (certifi), host name checked;
* `http://`: plaintext, for the demo and tests on this machine; any other host must be accepted
  explicitly (`insecure_plain_http`), and TLS settings with an http URL are refused at start.

The pin is checked inside the TLS handshake (`SSLObject.do_handshake`), so a wrong certificate ends
the connection before a byte of HTTP — the edge token included — is sent. Failures surface as
`httpx.ConnectError` naming the mismatch: in the sync's and the uplink's `last_error` (/api/status)
and in their log line.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterable
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edge.config import CentralLink, normalise_pin


def certificate_digests(der: bytes) -> tuple[str, str]:
    """(SHA-256 of the certificate, SHA-256 of its SubjectPublicKeyInfo), lowercase hex."""
    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest(), hashlib.sha256(spki).hexdigest()


def check_pin(der: bytes | None, pins: frozenset[str]) -> None:
    """Raise ssl.SSLCertVerificationError unless the peer's certificate matches a pin."""
    if der is None:
        raise ssl.SSLCertVerificationError("central sent no certificate; central.pin_sha256 needs one")
    cert_digest, key_digest = certificate_digests(der)
    if cert_digest in pins or key_digest in pins:
        return
    raise ssl.SSLCertVerificationError(
        f"central's certificate matches no central.pin_sha256: certificate sha256 {cert_digest}, "
        f"public key sha256 {key_digest}"
    )


def _pinned_classes(pins: frozenset[str]) -> tuple[type[ssl.SSLObject], type[ssl.SSLSocket]]:
    class PinnedObject(ssl.SSLObject):  # asyncio clients (anyio wraps a memory BIO)
        def do_handshake(self) -> None:
            super().do_handshake()  # raises SSLWantReadError until the handshake is complete
            check_pin(self.getpeercert(binary_form=True), pins)

    class PinnedSocket(ssl.SSLSocket):  # blocking clients
        def do_handshake(self, block: bool = False) -> None:
            super().do_handshake(block)
            check_pin(self.getpeercert(binary_form=True), pins)

    return PinnedObject, PinnedSocket


def ssl_context(link: CentralLink) -> ssl.SSLContext | None:
    """The TLS context for `link`, or None for a plain http URL."""
    if not link.url.lower().startswith("https://"):
        return None
    pins = frozenset(normalise_pin(p) for p in link.pin_sha256)
    if link.ca_file is not None:
        context = ssl.create_default_context(cafile=str(link.ca_file))
    elif pins:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the pin, checked in the handshake, is the verification
    else:
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if pins:
        context.sslobject_class, context.sslsocket_class = _pinned_classes(pins)
    return context


def build_client(link: CentralLink, **options: Any) -> httpx.AsyncClient:
    """The agent's client to central (feed sync, uplink, `edge reprovision`), authenticated with the
    edge token. It goes where `[central] url` says and nowhere else: no HTTP(S)_PROXY / ALL_PROXY from
    the environment (a proxy there would take the token and the feed somewhere the TLS settings and the
    "plain http only to this machine" check never looked at)."""
    context = ssl_context(link)
    return httpx.AsyncClient(
        base_url=link.url,
        headers={"Authorization": f"Bearer {link.token}"},
        verify=context if context is not None else True,
        trust_env=False,
        **options,
    )


def describe(link: CentralLink) -> dict[str, Any]:
    """How the agent reaches central, for /api/status and the start log line."""
    tls = link.url.lower().startswith("https://")
    checks: Iterable[str] = (
        ([f"CA bundle {link.ca_file}"] if link.ca_file else [])
        + ([f"{len(link.pin_sha256)} pinned digest(s)"] if link.pin_sha256 else [])
        + (["public CAs"] if tls and not link.ca_file and not link.pin_sha256 else [])
    )
    return {"url": link.url, "tls": tls, "verified_by": list(checks) if tls else []}
