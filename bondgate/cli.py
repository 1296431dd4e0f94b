"""The one command line, `bondgate`: thin over the library."""

from __future__ import annotations

import typer

from central.cli import app as central_app
from edge.cli import app as edge_app
from firmware_sim.cli import app as sim_app

app = typer.Typer(
    help="Bondgate: customs clearance from the central platform to the park gate.", no_args_is_help=True
)
app.add_typer(central_app, name="central")
app.add_typer(edge_app, name="edge")
app.add_typer(sim_app, name="sim")


@app.command()
def demo(
    parcels: int = typer.Option(36, help="how many parcels to declare"),
    keep: bool = typer.Option(False, help="keep central running after the table (Ctrl-C to stop)"),
) -> None:
    """Start central on a fresh database, declare parcels of every kind and show their clearances."""
    from bondgate.demo import run_demo

    run_demo(parcels=parcels, keep=keep)


if __name__ == "__main__":
    app()
