"""compose.yaml: valid against the Compose specification, and every command exists in our CLI.

Docker does not run here, so the file is checked as far as a file can be: Debian's docker-compose
validates it against the Compose JSON schema without an engine, and each of our services' commands
is resolved through the real `bondgate` CLI, options included.

Central runs as several processes over one PostgreSQL behind a balancer (docs/scaling.md): the
structure that makes that safe is checked here from the files themselves — the database's
healthcheck and C collation, every central process on the same database and the same signing key,
the balancer's health-checked upstreams and timeouts longer than the feed's long poll, and the
edge pointed at the balancer. `haproxy -c` checks the balancer's file where haproxy is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml

from bondgate.cli import app
from central.api.routes.parks import router as parks_router
from central.config import CentralSettings
from edge.config import EdgeSettings
from kernel.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
HAPROXY = ROOT / "deploy" / "haproxy.cfg"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian docker-compose not installed")
def test_compose_file_follows_the_specification() -> None:
    out = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr


def resolve(args: list[str]) -> None:
    """Walk the CLI like the shell would; fail on an unknown command or option."""
    command = typer.main.get_command(app)  # typer carries its own click: duck-type the groups
    rest = list(args)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"bondgate has no command {name!r} (in {args})"
        command = sub
    assert not hasattr(command, "commands"), f"{args} stops at a group"
    known = {opt for p in command.params for opt in getattr(p, "opts", [])}
    for token in rest:
        if token.startswith("--"):
            assert token.split("=")[0] in known, f"{args}: {command.name} has no option {token}"


@pytest.mark.parametrize(
    "name", [n for n, s in services().items() if s.get("image", "").startswith("bondgate")]
)
def test_every_bondgate_service_command_exists(name: str) -> None:
    service = services()[name]
    resolve(service["command"])
    assert service.get("healthcheck") or name not in {*central_processes(), "edge"}


def test_the_configs_compose_mounts_load() -> None:
    for name in ("central.toml", "central-pg.toml"):  # SQLite, one process; PostgreSQL, compose's
        central = load_settings(CentralSettings, ROOT / "deploy" / name)
        assert central.host == "0.0.0.0"
    edge = load_settings(EdgeSettings, ROOT / "deploy" / "edge.toml")
    assert {s.name for s in edge.stations} == {"line-1", "gate-1"}


def test_the_broker_is_authenticated() -> None:
    conf = (ROOT / "deploy" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "password_file" in conf


# --- central as several processes over PostgreSQL, behind a balancer ----------------------------


def mounts(service: dict) -> dict[str, str]:
    """target → source of a service's short-syntax volumes (`source:target[:mode]`)."""
    out = {}
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        out[target] = source
    return out


def central_processes() -> list[str]:
    return [n for n, s in services().items() if s.get("command", [])[:2] == ["central", "serve"]]


def central_config(name: str) -> dict:
    """The TOML a central service is started with, as written (its `--config` is a mounted file)."""
    service = services()[name]
    target = service["command"][service["command"].index("--config") + 1]
    source = mounts(service)[target]
    assert source.startswith("./"), f"{name}: the config {target} is not a file of the repository"
    return tomllib.loads((ROOT / source).read_text())


def depends(service: dict, on: str) -> str | None:
    """The condition `service` waits for on `on` (None: it does not depend on it)."""
    deps = service.get("depends_on", {})
    return deps.get(on, {}).get("condition") if isinstance(deps, dict) else None


def haproxy_sections() -> dict[str, list[str]]:
    """`kind name` (e.g. `backend central`) → its directives, comments and blank lines dropped."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in HAPROXY.read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            current = sections.setdefault(" ".join(line.split()[:2]), [])
        else:
            current.append(" ".join(line.split()))
    return sections


def seconds(value: str) -> float:
    """An haproxy time (`90s`, `2m`, `500ms`; a bare number is milliseconds)."""
    number, unit = re.fullmatch(r"(\d+)(us|ms|s|m|h|d)?", value).groups()  # type: ignore[union-attr]
    scale = {"us": 1e-6, "ms": 1e-3, None: 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return int(number) * scale


def balancer() -> tuple[str, dict]:
    found = [(n, s) for n, s in services().items() if s.get("image", "").startswith("haproxy:")]
    assert len(found) == 1, "one haproxy service in front of central"
    return found[0]


def test_postgres_is_health_checked_and_made_with_c_collation() -> None:
    pg = services()["postgres"]
    assert re.fullmatch(r"postgres:1[56](\.\d+)*", pg["image"]), pg["image"]
    assert "pg_isready" in pg["healthcheck"]["test"]
    # timestamps are ISO text: partition ranges and ORDER BY rely on byte order (docs/scaling.md)
    assert "--locale=C" in pg["environment"]["POSTGRES_INITDB_ARGS"].split()
    data = mounts(pg)["/var/lib/postgresql/data"]
    assert data in compose()["volumes"], "the database lives on a named volume"


def test_central_processes_share_one_postgres_and_one_signing_key() -> None:
    names = central_processes()
    assert len(names) >= 2, names
    pg = services()["postgres"]["environment"]
    key_volumes = set()
    for name in names:
        service = services()[name]
        config = central_config(name)
        url = urlsplit(config["database"])
        assert url.scheme == "postgresql", f"{name}: database {config['database']!r}"
        assert (url.hostname, url.port or 5432) == ("postgres", 5432)
        assert url.username == pg["POSTGRES_USER"] and url.path == f"/{pg['POSTGRES_DB']}"
        assert url.password is None, "the password comes from PGPASSWORD, not from a file in git"
        assert service["environment"]["PGPASSWORD"] == pg["POSTGRES_PASSWORD"]
        assert depends(service, "postgres") == "service_healthy"
        assert not service.get("ports"), f"{name} is reached through the balancer only"
        # the signing key is a file on a named volume mounted in every process
        key = Path(config["signing_key"])
        where = [t for t in mounts(service) if key.is_relative_to(t)]
        assert where, f"{name}: {key} is on no volume"
        key_volumes.add((mounts(service)[max(where, key=len)], str(key)))
    assert len(key_volumes) == 1, f"the processes sign with different keys: {key_volumes}"
    (volume, key_path) = key_volumes.pop()
    assert volume in compose()["volumes"]
    # one service creates the key before any process starts, so none races to create its own
    makers = [n for n, s in services().items() if s.get("command", [])[:2] == ["central", "keys"]]
    assert len(makers) == 1
    maker = services()[makers[0]]
    assert maker["restart"] == "no"
    assert central_config(makers[0])["signing_key"] == key_path
    assert [t for t, v in mounts(maker).items() if v == volume and Path(key_path).is_relative_to(t)]
    for name in names:
        assert depends(services()[name], makers[0]) == "service_completed_successfully"


def test_the_balancer_health_checks_every_central_process() -> None:
    _, lb = balancer()
    assert mounts(lb)["/usr/local/etc/haproxy/haproxy.cfg"] == "./deploy/haproxy.cfg"
    assert "8600:8600" in lb["ports"]
    assert lb.get("healthcheck")
    sections = haproxy_sections()
    assert any(d == "bind :8600" for d in sections["frontend central"])
    backend = sections["backend central"]
    assert "option httpchk" in backend
    assert any(d.startswith("http-check send meth GET uri /healthz") for d in backend)
    assert "http-check expect status 200" in backend
    default = " ".join(d for d in backend if d.startswith("default-server"))
    servers = {d.split()[1]: d for d in backend if d.startswith("server ")}
    assert sorted(servers) == sorted(central_processes())
    for process, line in servers.items():
        assert line.split()[2] == f"{process}:8600"
        assert re.search(r"(^| )check( |$)", f"{line} {default}"), f"{process} is not health-checked"


def test_the_balancer_outlasts_the_feed_long_poll() -> None:
    (feed,) = [r for r in parks_router.routes if getattr(r, "path", "").endswith("/feed")]
    (wait,) = [q for q in feed.dependant.query_params if q.name == "wait"]  # type: ignore[attr-defined]
    longest = max(m.le for m in wait.field_info.metadata if hasattr(m, "le"))
    assert longest >= 60
    sections = haproxy_sections()
    for side, section in (("client", "frontend central"), ("server", "backend central")):
        # a frontend's or backend's own timeout overrides the defaults' one
        found = [d for d in (*sections["defaults"], *sections[section]) if d.startswith(f"timeout {side} ")]
        assert found, f"no timeout {side}"
        assert seconds(found[-1].split()[2]) > longest, f"timeout {side} cuts a long poll of {longest} s"


def test_the_edge_reaches_central_through_the_balancer() -> None:
    name, _ = balancer()
    url = urlsplit(load_settings(EdgeSettings, ROOT / "deploy" / "edge.toml").central.url)
    assert (url.hostname, url.port) == (name, 8600)
    assert depends(services()["edge"], name) is not None


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
def test_haproxy_accepts_the_balancer_file() -> None:
    # the processes' names resolve only inside compose: haproxy warns, and starts them disabled
    out = subprocess.run(["haproxy", "-c", "-f", str(HAPROXY)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
