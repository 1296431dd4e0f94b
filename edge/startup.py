"""What the agent checks before it starts anything: the files and places its configuration names.

The settings themselves are validated when they are loaded (edge/config.py: types, references,
I/O points); these are the things only the machine the agent runs on can answer: central's key file
is there and holds an Ed25519 public key, the database and the evidence directories can be written,
the API's certificate and key load and belong together, the MQTT TLS files load, the API's
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
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from devices.transports.mqtt import TlsConfig
from edge.config import CameraDevice, EdgeSettings, LocalApi, MqttSensorsDevice
from kernel.config import ConfigError

SQLITE_HEADER = b"SQLite format 3\x00"
MAX_PEM_BYTES = 1 << 20  # a key or certificate file larger than this is not one

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
            mqtt_tls(f"devices.{name}.broker.tls", device.broker.tls, problems)
    if settings.mqtt is not None and settings.mqtt.broker.tls is not None:
        mqtt_tls("mqtt.broker.tls", settings.mqtt.broker.tls, problems)
    api_tls(settings.api, problems)
    if problems or key is None:
        raise ConfigError.of(problems)
    return key


# --- files -------------------------------------------------------------------------------------------


def _nul(key: str, path: Path, problems: Problems) -> bool:
    """A path with a NUL character cannot name a file (and makes os calls raise ValueError)."""
    if "\x00" in str(path):
        problems.append((key, f"{str(path)!r} contains a NUL character"))
        return True
    return False


def _read(key: str, path: Path, problems: Problems) -> bytes | None:
    """A small regular file's bytes (a FIFO or a device such as /dev/zero would never end)."""
    if _nul(key, path, problems):
        return None
    try:
        if path.is_dir():
            problems.append((key, f"'{path}' is a directory, not a file"))
            return None
        if path.exists() and not path.is_file():
            problems.append((key, f"'{path}' is not a regular file"))
            return None
        with path.open("rb") as f:
            data = f.read(MAX_PEM_BYTES + 1)
    except FileNotFoundError:
        problems.append((key, f"no such file '{path}'"))
        return None
    except OSError as exc:
        problems.append((key, f"cannot read '{path}': {_why(exc)}"))
        return None
    if len(data) > MAX_PEM_BYTES:
        problems.append((key, f"'{path}' is larger than {MAX_PEM_BYTES} bytes: not a key or certificate"))
        return None
    return data


def mqtt_tls(key: str, tls: TlsConfig, problems: Problems) -> None:
    """The broker's CA and the client's certificate and key, loaded as the MQTT client will."""
    context = ssl.create_default_context()
    if tls.ca is not None and _read(f"{key}.ca", tls.ca, problems) is not None:
        try:
            context.load_verify_locations(cafile=tls.ca)
        except ssl.SSLError:
            problems.append((f"{key}.ca", f"'{tls.ca}' holds no PEM certificate"))
    if tls.cert is None or tls.key is None:
        return  # both or neither: TlsConfig's own validator
    cert, private = _read(f"{key}.cert", tls.cert, problems), _read(f"{key}.key", tls.key, problems)
    if cert is not None and private is not None:
        try:
            context.load_cert_chain(tls.cert, tls.key)
        except ssl.SSLError as exc:
            problems.append(
                (f"{key}.key", f"'{tls.cert}' and '{tls.key}' are not a certificate and its key: {exc}")
            )


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
        except (ValueError, UnsupportedAlgorithm):
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
    if _nul(key, path, problems):
        return False
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
    if _nul(key, path, problems):
        return
    if path.is_dir():
        problems.append((key, f"'{path}' is a directory, not a database file"))
        return
    if path.exists() and not path.is_file():
        problems.append((key, f"'{path}' is not a regular file"))
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
