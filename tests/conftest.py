from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/factories.py and tests/support as modules


def shared_dir() -> Path | None:
    """../shared (the standard's XSD and samples) when present; tests that need it skip otherwise."""
    candidate = Path(os.environ.get("BONDGATE_SHARED", ROOT.parent / "shared"))
    return candidate if candidate.is_dir() else None


@pytest.fixture
def central(tmp_path: Path) -> Iterator[object]:
    from tests.support.central_server import run_central

    with run_central(tmp_path) as running:
        yield running


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[object]:
    """A real Mosquitto broker on a free port (anonymous); `.stop()` simulates a broker outage."""
    from tests.support.mosquitto import running_broker

    with running_broker(tmp_path) as broker:
        yield broker
