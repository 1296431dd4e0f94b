"""`bondgate edge …`: run the park's agent and look after its database."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edge.auth import Role
from kernel.config import ConfigError, load_settings, toml_dumps
from kernel.logs import setup_logging

if TYPE_CHECKING:  # imported where used, so `bondgate --help` stays quick
    from edge.agent import Agent
    from edge.config import EdgeSettings
    from edge.sync import SyncStatus

app = typer.Typer(help="The park's edge agent.", no_args_is_help=True)
db_app = typer.Typer(help="The agent's local database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="edge TOML file")]


def _settings(config: Path) -> EdgeSettings:
    from edge.config import EdgeSettings

    try:
        return load_settings(EdgeSettings, config)
    except ConfigError as exc:
        for line in exc.problems:
            typer.echo(line, err=True)
        raise typer.Exit(2) from exc


@app.command()
def run(config: ConfigOpt) -> None:
    """Run the agent: devices, stations, feed sync, uplink, local MQTT and HTTP API."""
    import logging

    from edge.agent import Agent

    settings = _settings(config)
    setup_logging(settings.log_level)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # our DeviceErrors say it once

    async def main() -> None:
        agent = Agent(settings)  # checks what the settings point at (edge/startup.py)
        with _first_sync_progress(agent):
            await agent.serve()

    try:
        asyncio.run(main())
    except ConfigError as exc:  # one line per problem, naming its key; no traceback
        for line in exc.problems:
            typer.echo(f"{config}: {line}", err=True)
        raise typer.Exit(2) from exc


@contextlib.contextmanager
def _first_sync_progress(agent: Agent) -> Iterator[None]:
    """A progress bar while a large first sync runs, when a person is watching a terminal."""
    if not sys.stderr.isatty() or agent.store.count_clearances() > 0:
        yield
        return
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task("first sync of the clearance feed", total=None)

        def update(status: SyncStatus) -> None:
            progress.update(task, completed=status.cursor, total=max(status.head, status.cursor) or None)
            if status.caught_up:
                agent.sync.on_progress = None
                progress.stop()

        agent.sync.on_progress = update
        yield


@app.command()
def passwd(
    name: Annotated[str, typer.Option(help="user name")],
    role: Annotated[Role, typer.Option(help="what the user may do")] = Role.OPERATOR,
) -> None:
    """Print an api.users entry for edge.toml, with a scrypt hash of a password typed at the prompt
    (or, from a script, the first line of standard input)."""
    from edge.auth import hash_password

    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    entry = {"name": name, "role": role.value, "password_hash": hash_password(password)}
    typer.echo(toml_dumps({"api": {"users": [entry]}}).strip())


@db_app.command("check")
def db_check(config: ConfigOpt) -> None:
    """integrity_check the database and verify the event chain held in the outbox."""
    from edge.dbcheck import check

    settings = _settings(config)
    problems = check(settings.database)
    for line in problems:
        typer.echo(line)
    if problems:
        raise typer.Exit(1)
    typer.echo("ok: integrity_check passed, event chain intact")


@app.command()
def reprovision(config: ConfigOpt) -> None:
    """Start the next epoch of this edge's event chain, after central re-provisioned the edge.

    For a database that was lost or restored from an older copy (central refuses its events): once an
    officer has run `bondgate central edge reprovision`, this drops from the outbox what central
    already holds of the closed chain and carries every other pending event into the new epoch."""
    import httpx

    from edge.central_client import build_client
    from edge.reprovision import ReprovisionRefused
    from edge.reprovision import reprovision as start_next_epoch
    from edge.store import Store

    settings = _settings(config)

    async def main() -> str:
        store = Store(settings.database)
        try:
            async with build_client(settings.central, timeout=httpx.Timeout(60, connect=10)) as client:
                done = await start_next_epoch(store, client, settings.park_id, settings.edge_id)
        finally:
            store.close()
        return done.summary()

    try:
        summary = asyncio.run(main())
    except ReprovisionRefused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except (httpx.HTTPError, ValueError) as exc:
        typer.echo(f"error: could not ask central ({settings.central.url}): {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(summary)
