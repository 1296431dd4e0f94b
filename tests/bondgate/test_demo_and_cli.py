"""The front door: `bondgate demo` runs end to end, and every CLI command is documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import typer.main

from bondgate.cli import app

ROOT = Path(__file__).resolve().parents[2]


def test_demo_declares_parcels_of_every_kind(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bondgate.cli", "demo", "--parcels", "12"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "statuses: 100: 6, 500: 1, 800: 3, 800 (cancelled): 1, waiting: 1" in text
    assert "released without clearance: 0" in text and "released twice: 0" in text


def _commands(group: typer.Typer, prefix: str) -> list[str]:
    click_group = typer.main.get_group(group)
    found = []

    def walk(cmd, path):  # type: ignore[no-untyped-def]
        sub = getattr(cmd, "commands", None)
        if sub:
            for name, child in sub.items():
                walk(child, f"{path} {name}")
        else:
            found.append(path)

    walk(click_group, prefix)
    return found


def test_every_cli_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [c for c in _commands(app, "bondgate") if not re.search(re.escape(c) + r"\b", readme)]
    assert not missing, f"README does not document: {missing}"
