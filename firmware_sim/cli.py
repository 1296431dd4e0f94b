"""`bondgate sim …`: the hardware simulators, each speaking its real wire protocol."""

from __future__ import annotations

import typer

from firmware_sim import (
    camera,
    gateio,
    id_reader,
    modbus_scale,
    mqtt_sensor,
    scale,
    scanner,
    scenario,
    truck,
    weighbridge,
)

app = typer.Typer(
    help="Device simulators: serial scanner and scales over a pty, Modbus gate I/O and "
    "weight indicator, MQTT sensors, camera.",
    no_args_is_help=True,
)
app.command("scanner", help="Barcode scanner on a pty (or TCP for socket://).")(scanner.command)
app.command("scale", help="MT-SICS / Toledo 8217 / Toledo continuous scale on a pty.")(scale.command)
app.command("gateio", help="Modbus TCP gate I/O module (ioLogik E1212 or ADAM-6050 layout).")(gateio.command)
app.command("modbus-scale", help="Modbus TCP weight indicator.")(modbus_scale.command)
app.command("mqtt-sensor", help="Gate, loop and plate sensors publishing to an MQTT broker.")(
    mqtt_sensor.command
)
app.command("camera", help="Camera with a waybill label: MJPEG over HTTP or a video file.")(camera.command)
app.command("id-reader", help="Electronic-plate / IC-card reader: a line per read on a pty.")(
    id_reader.command
)
app.command(
    "weighbridge", help="Weighbridge indicator streaming Toledo continuous output on a pty; trucks drive on."
)(weighbridge.command)
app.command("truck", help="A whole vehicle gate lane's devices, and trucks driven through it.")(truck.command)
app.command("scenario", help="A whole simulated park's devices, driven parcel by parcel at a rate.")(
    scenario.command
)
