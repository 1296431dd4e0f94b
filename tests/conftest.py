from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # testkit/ as a package


def shared_dir() -> Path | None:
    """../shared (the standard's XSD and samples) when present; tests that need it skip otherwise."""
    candidate = Path(os.environ.get("BONDGATE_SHARED", ROOT.parent / "shared"))
    return candidate if candidate.is_dir() else None


@pytest.fixture(autouse=True)
def _heap_of_earlier_tests_frozen() -> Iterator[None]:
    """After a thousand tests this process holds some 300,000 objects, and a full collection of
    them holds the event loop for 200-600 ms on a CI machine: an agent running in this process sees
    its loop held up for longer than a line's margin and holds its parcels, as it must
    (edge/loopwatch.py). The agent's own process has no such heap, so what earlier tests left is
    moved out of the collector's sight for the test's run (gc.freeze: cheap, nothing is freed)
    and handed back after it."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.fixture
def central(tmp_path: Path) -> Iterator[object]:
    from testkit.central_server import run_central

    with run_central(tmp_path) as running:
        yield running


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[object]:
    """A real Mosquitto broker on a free port (anonymous); `.stop()` simulates a broker outage."""
    from testkit.mosquitto import running_broker

    with running_broker(tmp_path) as broker:
        yield broker


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """A real PostgreSQL server of its own for the test session (a new cluster in a temporary folder,
    on a free port, run as the `postgres` user when the tests run as root); removed after."""
    from testkit.postgres import running_postgres

    with running_postgres() as server:
        yield server
