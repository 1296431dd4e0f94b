"""What the agent checks before it starts anything: the files and places its configuration names.

The settings themselves are validated when they are loaded (edge/config.py: types, references,
I/O points); these are the things only the machine the agent runs on can answer: central's key file
is there and holds an Ed25519 public key, the database and the evidence directories can be written,
the API's certificate and key load and belong together, the MQTT TLS files can be read, the API's
address can be listened on. Every problem is found before any device is touched, and each one names
its key (`central.public_key: no such file '/etc/bondgate/central-feed.pem'`); the CLI prints them
one per line and exits 2.
"""

from __future__ import annotations

import errno
import socket
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bondgate.config import ConfigError
from edge.config import CameraDevice, EdgeSettings, LocalApi, MqttSensorsDevice

SQLITE_HEADER = b"SQLite format 3\x00"

Problems = list[tuple[str, str]]


def check(settings: EdgeSettings) -> Ed25519PublicKey:
    """Check everything the configuration points at; central's feed key, loaded, or ConfigError."""
    problems: Problems = []
    key = public_key("central.public_key", settings.central.public_key, problems)
    database("database", settings.database, problems)
    directory("evidence_dir", settings.evidence_dir, problems)
    for name, device in settings.devices.items():
        if isinstance(device, CameraDevice) and device.evidence_dir is not None:
            directory(f"devices.{name}.evidence_dir", device.evidence_dir, problems)
        if isinstance(device, MqttSensorsDevice) and device.broker.tls is not None:
            for field in ("ca", "cert", "key"):
                readable(f"devices.{name}.broker.tls.{field}", getattr(device.broker.tls, field), problems)
    if settings.mqtt is not None and settings.mqtt.broker.tls is not None:
        for field in ("ca", "cert", "key"):
            readable(f"mqtt.broker.tls.{field}", getattr(settings.mqtt.broker.tls, field), problems)
    api_tls(settings.api, problems)
    if problems or key is None:
        raise ConfigError.of(problems)
    return key


# --- files -------------------------------------------------------------------------------------------


def _read(key: str, path: Path, problems: Problems) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        problems.append((key, f"no such file '{path}'"))
    except IsADirectoryError:
        problems.append((key, f"'{path}' is a directory, not a file"))
    except OSError as exc:
        problems.append((key, f"cannot read '{path}': {_why(exc)}"))
    return None


def readable(key: str, path: Path | None, problems: Problems) -> None:
    if path is not None:
        _read(key, path, problems)


def public_key(key: str, path: Path, problems: Problems) -> Ed25519PublicKey | None:
    """Central's feed key: a PEM public key, and an Ed25519 one."""
    data = _read(key, path, problems)
    if data is None:
        return None
    if b"PRIVATE KEY-----" in data:
        why = "holds a private key; give central's public key (bondgate central keys)"
        problems.append((key, f"'{path}' {why}"))
        return None
    try:
        loaded = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        problems.append((key, f"'{path}' is not a PEM public key (bondgate central keys prints central's)"))
        return None
    if not isinstance(loaded, Ed25519PublicKey):
        kind = type(loaded).__name__.removeprefix("_").replace("PublicKey", "") or "another"
        problems.append((key, f"'{path}' holds an {kind} key, not central's Ed25519 feed key"))
        return None
    return loaded


def api_tls(api: LocalApi, problems: Problems) -> None:
    """The API's certificate (chain) and private key: PEM, unencrypted, and a pair."""
    if api.tls_cert is None or api.tls_key is None:
        return  # both or neither: LocalApi's own validator
    ok = True
    cert = _read("api.tls_cert", api.tls_cert, problems)
    if cert is not None:
        try:
            x509.load_pem_x509_certificates(cert)
        except ValueError:
            problems.append(("api.tls_cert", f"'{api.tls_cert}' is not a PEM certificate"))
            ok = False
    private = _read("api.tls_key", api.tls_key, problems)
    if private is not None:
        try:
            serialization.load_pem_private_key(private, password=None)
        except TypeError:
            problems.append(("api.tls_key", f"'{api.tls_key}' is encrypted; the agent needs it unencrypted"))
            ok = False
        except (ValueError, serialization.UnsupportedAlgorithm):
            problems.append(("api.tls_key", f"'{api.tls_key}' is not a PEM private key"))
            ok = False
    if cert is None or private is None or not ok:
        return
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(api.tls_cert, api.tls_key)
    except ssl.SSLError as exc:
        why = "does not match api.tls_cert" if "KEY_VALUES_MISMATCH" in str(exc) else str(exc)
        problems.append(("api.tls_key", f"'{api.tls_key}' {why}"))


# --- places the agent writes --------------------------------------------------------------------------


def directory(key: str, path: Path, problems: Problems) -> bool:
    """`path` is (or can be made) a directory in which this process can create files."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        problems.append((key, f"'{path}' is a file, not a directory"))
        return False
    except OSError as exc:
        problems.append((key, f"cannot create the directory '{path}': {_why(exc)}"))
        return False
    try:
        with tempfile.TemporaryFile(dir=path, prefix=".bondgate-probe-"):
            pass
    except OSError as exc:
        problems.append((key, f"cannot write in '{path}': {_why(exc)}"))
        return False
    return True


def database(key: str, path: Path, problems: Problems) -> None:
    """The SQLite file can be opened for writing, and so can its directory (WAL and shared-memory
    files live next to it); an existing file must be an SQLite database."""
    if path.is_dir():
        problems.append((key, f"'{path}' is a directory, not a database file"))
        return
    if not directory(key, path.parent, problems) or not path.exists():
        return
    try:
        with path.open("r+b") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        problems.append((key, f"cannot write '{path}': {_why(exc)}"))
        return
    if head and head != SQLITE_HEADER:
        problems.append((key, f"'{path}' is not an SQLite database"))


# --- the API's socket ----------------------------------------------------------------------------------


def listen(api: LocalApi) -> socket.socket:
    """Bind the API's address now, so a port in use or a host that is not this machine's is a
    start-up error naming its key, not a uvicorn exit after the devices were started. Listening
    from here on; uvicorn serves it once the agent has started."""
    family = socket.AF_INET6 if ":" in api.host else socket.AF_INET  # as uvicorn decides
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and without
    # it every response waits ~40 ms for a delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((api.host, api.port))
        sock.listen(2048)  # uvicorn's backlog: a client that comes early waits to be accepted
    except OSError as exc:
        sock.close()
        key = "api.port" if getattr(exc, "errno", None) in (errno.EADDRINUSE, errno.EACCES) else "api.host"
        raise ConfigError.of([(key, f"cannot listen on {api.host}:{api.port}: {_why(exc)}")]) from exc
    sock.set_inheritable(True)
    return sock


def api_url(api: LocalApi, sock: socket.socket) -> str:
    host = f"[{api.host}]" if ":" in api.host else api.host
    return f"{'https' if api.tls else 'http'}://{host}:{sock.getsockname()[1]}"


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


__all__ = ["check", "listen"]
