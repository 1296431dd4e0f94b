"""`bondgate central …`: serve the platform and administer it from the shell."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from central.auth import Role, create_token
from central.config import CentralSettings
from central.keys import load_or_create_key
from central.store.db import Database, DatabaseUnavailable, open_database
from central.store.parks import upsert_park
from kernel.config import ConfigError, load_settings
from kernel.logs import setup_logging
from kernel.timefmt import iso_now
from kernel.wire import public_key_pem

app = typer.Typer(
    help="The central platform: CEB intake, comparison, clearance feed, event intake.", no_args_is_help=True
)
park_app = typer.Typer(help="Parks and the account books they handle.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
edge_app = typer.Typer(help="Edges of a park: their event chains, re-provisioning.", no_args_is_help=True)
app.add_typer(park_app, name="park")
app.add_typer(token_app, name="token")
app.add_typer(edge_app, name="edge")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="central TOML file")]


def settings_from(config: Path | None) -> CentralSettings:
    try:
        return load_settings(CentralSettings, config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


def database_of(settings: CentralSettings) -> Database:
    """The configured database, opened (and migrated); one line naming the key if it cannot be."""
    try:
        return open_database(settings.database)
    except DatabaseUnavailable as exc:
        typer.echo(f"database: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="override the configured host")] = None,
    port: Annotated[int | None, typer.Option(help="override the configured port (0: any free port)")] = None,
) -> None:
    """Run the HTTP API (uvicorn)."""
    import uvicorn

    from central.api.app import create_app

    settings = settings_from(config)
    setup_logging(settings.log_level)
    database_of(settings).close()  # reachable and migrated, or one line naming the key, before serving
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=settings.port if port is None else port,
        log_config=None,
        access_log=False,
    )


@app.command()
def keys(config: ConfigOpt = None) -> None:
    """Print the Ed25519 public key (PEM) that edges use to verify feed records."""
    settings = settings_from(config)
    typer.echo(public_key_pem(load_or_create_key(settings.signing_key).public_key()), nl=False)


@park_app.command("add")
def park_add(
    park_id: str,
    name: Annotated[str, typer.Option(help="display name")],
    ems_no: Annotated[list[str] | None, typer.Option("--ems-no", help="bonded account book (repeat)")] = None,
    area_code: Annotated[list[str] | None, typer.Option("--area-code", help="area code (repeat)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Register a park (or update it) with the account books and area codes it handles."""
    settings = settings_from(config)
    row = upsert_park(
        database_of(settings),
        park_id=park_id,
        name=name,
        ems_nos=ems_no or [],
        area_codes=area_code or [],
        now=iso_now(),
    )
    typer.echo(
        f"park {row.park_id}: {row.name} emsNo={','.join(row.ems_nos)} areaCode={','.join(row.area_codes)}"
    )


@token_app.command("create")
def token_create(
    role: Annotated[Role, typer.Option(help="enterprise, edge, officer or admin")],
    name: Annotated[str, typer.Option(help="who holds it")],
    park: Annotated[str | None, typer.Option(help="the park an edge token reaches")] = None,
    edge: Annotated[str | None, typer.Option(help="the one edge id an edge token reports for")] = None,
    code: Annotated[
        list[str] | None,
        typer.Option(help="an enterprise code an enterprise token acts for (repeat for each)"),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    settings = settings_from(config)
    try:
        secret, _ = create_token(
            database_of(settings),
            role=role,
            name=name,
            park_id=park,
            edge_id=edge,
            enterprise_codes=code,
        )
    except (ValueError, LookupError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(secret)


@edge_app.command("show")
def edge_show(park: str, edge: str, config: ConfigOpt = None) -> None:
    """Print an edge's open chain (epoch, last seq) and the chains closed before it."""
    from central.chains import UnknownEdge, chain_view

    settings = settings_from(config)
    try:
        view = chain_view(database_of(settings), park_id=park, edge_id=edge)
    except UnknownEdge as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    held = f"central holds seq 1..{view.last_seq}" if view.last_seq else "empty"
    typer.echo(f"edge {view.edge_id} (park {view.park_id}): epoch {view.epoch} open, {held}")
    for closed in view.closed:
        typer.echo(
            f"  epoch {closed.epoch}: closed at seq {closed.last_seq} on {closed.closed_at.isoformat()}"
            f" by {closed.closed_by}: {closed.reason}"
        )


@edge_app.command("reprovision")
def edge_reprovision(
    park: str,
    edge: str,
    reason: Annotated[str, typer.Option(help="why (kept with the closed chain, shown in the alert)")],
    by: Annotated[str | None, typer.Option(help="who decided it (default: the login name)")] = None,
    expect_epoch: Annotated[
        int | None, typer.Option(help="refuse unless this epoch is the open one (guards against twice)")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Close an edge's event chain and open its next epoch (its database was lost or restored).

    Then run `bondgate edge reprovision --config edge.toml` on the edge: it carries the events central
    never got into the new epoch."""
    import getpass

    from central.chains import EpochMoved, UnknownEdge, reprovision
    from kernel.timefmt import utc_now

    settings = settings_from(config)
    if len(reason.strip()) < 5:
        typer.echo("error: give a reason of at least 5 characters", err=True)
        raise typer.Exit(2)
    actor = f"cli:{by or getpass.getuser()}"
    try:
        done = reprovision(
            database_of(settings),
            park_id=park,
            edge_id=edge,
            actor=actor,
            reason=reason.strip(),
            now=utc_now(),
            expect_epoch=expect_epoch,
        )
    except (UnknownEdge, EpochMoved) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(
        f"edge {done.edge_id}: epoch {done.closed.epoch} closed at seq {done.closed.last_seq};"
        f" epoch {done.epoch} open. Now run `bondgate edge reprovision --config edge.toml` on the edge."
    )
