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
    parcels: int = typer.Option(120, help="how many parcels to declare and drive through the park"),
    rate: float = typer.Option(10.0, help="parcels per second through the simulated hardware"),
    faults: str = typer.Option("noread=0.02", help="noread=P,noise=P,swap=P (probabilities)"),
    keep: bool = typer.Option(False, help="keep everything running after the run (Ctrl-C to stop)"),
) -> None:
    """The whole park: central, Mosquitto, simulated devices and the edge agent, parcels of every kind."""
    from bondgate.demo import run_demo

    run_demo(parcels=parcels, rate=rate, faults=faults, keep=keep)


if __name__ == "__main__":
    app()
