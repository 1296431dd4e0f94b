"""compose.yaml: valid against the Compose specification, and every command exists in our CLI.

Docker does not run here, so the file is checked as far as a file can be: Debian's docker-compose
validates it against the Compose JSON schema without an engine, and each of our services' commands
is resolved through the real `bondgate` CLI, options included.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import typer.main
import yaml

from bondgate.cli import app
from central.config import CentralSettings
from edge.config import EdgeSettings
from kernel.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"


def services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


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
    assert service.get("healthcheck") or name not in {"central", "edge"}


def test_the_configs_compose_mounts_load() -> None:
    central = load_settings(CentralSettings, ROOT / "deploy" / "central.toml")
    assert central.host == "0.0.0.0"
    edge = load_settings(EdgeSettings, ROOT / "deploy" / "edge.toml")
    assert {s.name for s in edge.stations} == {"line-1", "gate-1"}


def test_the_broker_is_authenticated() -> None:
    conf = (ROOT / "deploy" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "password_file" in conf
