"""The central suite runs over both of central's databases: SQLite and PostgreSQL.

A test that uses central's database — the `central` or `central_database` fixture, or marked
`both_backends` (it starts centrals itself with `run_central`) — runs once per backend, with ids
`[sqlite]` and `[postgresql]` (unless marked `one_backend`: a refusal at the HTTP boundary, before
anything reaches the store); the PostgreSQL runs are also marked `postgresql` (`-m "not postgresql"`
leaves them out). Each PostgreSQL run gets a database of its own, copied from a template migrated
once per session on the session's own server (tests/conftest.py `postgres`), dropped after the test.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import central_server

BACKENDS = ("sqlite", "postgresql")
TEMPLATE = "central_template"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("one_backend"):
        return
    uses = {"central", "central_database"} & set(metafunc.fixturenames)
    if uses or metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("central_backend", BACKENDS, indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("central_backend") == "postgresql":
            item.add_marker(pytest.mark.postgresql)


class PgDatabases:
    """Fresh central databases on the session's server: one per folder (a restart over the same
    folder finds the same database), each a copy of the migrated template."""

    def __init__(self, server: object) -> None:
        from central.store.db import open_database

        self.server = server
        self.names: dict[Path, str] = {}
        self._numbers = itertools.count(1)
        server.create_database(TEMPLATE)  # type: ignore[attr-defined]
        open_database(server.dsn_for(TEMPLATE)).close()  # type: ignore[attr-defined]  # migrated once

    def for_folder(self, folder: Path) -> str:
        if folder not in self.names:
            self.names[folder] = f"central_{next(self._numbers)}"
            self.server.create_database(self.names[folder], template=TEMPLATE)  # type: ignore[attr-defined]
        return str(self.server.dsn_for(self.names[folder]))  # type: ignore[attr-defined]

    def drop_all(self) -> None:
        for name in self.names.values():
            self.server.drop_database(name)  # type: ignore[attr-defined]
        self.names.clear()


@pytest.fixture(scope="session")
def central_pg(postgres: object) -> PgDatabases:
    return PgDatabases(postgres)


@pytest.fixture(autouse=True)
def central_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Which database this run of the test gives central ("sqlite" unless parametrised)."""
    backend: str = getattr(request, "param", "sqlite")
    if backend != "postgresql":
        yield backend
        return
    databases: PgDatabases = request.getfixturevalue("central_pg")
    monkeypatch.setattr(central_server, "default_database", databases.for_folder)
    try:
        yield backend
    finally:
        databases.drop_all()


@pytest.fixture
def central_database(central_backend: str, tmp_path: Path) -> str:
    """Where a central database for this test is: a SQLite file or a PostgreSQL URL."""
    return central_server.default_database(tmp_path)
