"""The front door: `bondgate demo` runs end to end, and every CLI command is documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import typer.main

from bondgate.cli import app

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_the_whole_park(tmp_path: Path) -> None:
    """Central, Mosquitto and the edge agent as processes, the devices simulated: parcels of every
    kind roll through, and central ends with nothing released without clearance or twice."""
    out = subprocess.run(
        [sys.executable, "-m", "bondgate.cli", "demo", "--parcels", "36", "--rate", "8"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = " ".join(out.stdout.split())
    assert "36/36 parcels played" in text
    assert "0 / 0 (as it must be)" in text
    for code in ("REJECTED", "NOT_FOUND", "INSPECTION", "CANCELLED", "WEIGHT_MISMATCH", "LABEL_MISMATCH"):
        assert code in text, code
    assert "RELEASE:" in text and "outbox (not yet at central) │ 0 │" in text
    # trucks took the released parcels out through the vehicle gate; each fault kind was stopped
    assert "through the gate without a line release │ 0 (as it must be)" in text
    for code in ("WEIGHT_OUT_OF_TOLERANCE", "PLATE_MISMATCH", "SEAL_MISSING", "TAILGATING"):
        assert code in text, code
    assert "PASS (supervisor): 1" in text and "(compliant, " in text and "): left" in text


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
