"""A whole simulated park: the simulators one park needs, and the device section of an edge.toml
that points at them. Used by `bondgate demo` and `bondgate sim scenario`.

One conveyor line (photo-eye and diverter on a Modbus gate-I/O module, a fixed scanner, an MT-SICS
scale, a camera over HTTP MJPEG), a manual check bench (handheld scanner, Toledo 8217 scale) and a
vehicle gate (loop detector and barrier on the same module, its own scanner).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_sim.camera import CameraSim
from firmware_sim.gateio import GateIOSim
from firmware_sim.scale import ScaleSim
from firmware_sim.scanner import ScannerSim


@dataclass
class SimulatedPark:
    folder: Path
    io: GateIOSim = field(init=False)
    line_scanner: ScannerSim = field(init=False)
    line_scale: ScaleSim = field(init=False)
    camera: CameraSim = field(init=False)
    bench_scanner: ScannerSim = field(init=False)
    bench_scale: ScaleSim = field(init=False)
    gate_scanner: ScannerSim = field(init=False)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.io = GateIOSim("e1212", barrier_delay_s=0.2)
        self.line_scanner = ScannerSim(link=self.folder / "line-scanner")
        self.line_scale = ScaleSim("mt-sics", link=self.folder / "line-scale")
        self.camera = CameraSim(fps=20)
        self.bench_scanner = ScannerSim(link=self.folder / "bench-scanner")
        self.bench_scale = ScaleSim("toledo-8217", link=self.folder / "bench-scale")
        self.gate_scanner = ScannerSim(link=self.folder / "gate-scanner")

    @property
    def sims(self) -> list[Any]:
        return [
            self.io,
            self.line_scanner,
            self.line_scale,
            self.camera,
            self.bench_scanner,
            self.bench_scale,
            self.gate_scanner,
        ]

    async def start(self) -> None:
        for sim in self.sims:
            await sim.start()

    async def stop(self) -> None:
        for sim in reversed(self.sims):
            stop = getattr(sim, "close", None) or sim.stop
            await stop()

    def edge_devices_and_stations(self) -> dict[str, Any]:
        """The [devices] and [[stations]] of an edge.toml for this park."""
        return {
            "devices": {
                "io1": {
                    "driver": "gateio",
                    "endpoint": {"kind": "tcp", "host": "127.0.0.1", "port": self.io.port},
                    "io": {
                        "profile": "e1212",
                        "inputs": {
                            "photo_eye_1": 0,
                            "photo_eye_2": 1,
                            "loop": 2,
                            "barrier_open": 3,
                            "barrier_closed": 4,
                        },
                        "outputs": {
                            "barrier": {"channel": 0, "safe": False},
                            "diverter_left": {"channel": 1, "safe": False},
                            "diverter_right": {"channel": 2, "safe": False},
                        },
                    },
                },
                "line_scanner": {"driver": "scanner", "url": self.line_scanner.url, "dedupe_window_s": 0.0},
                "line_scale": {
                    "driver": "scale",
                    "protocol": "mt-sics",
                    "url": self.line_scale.path,
                    "poll_interval_s": 0.05,
                },
                "line_camera": {
                    "driver": "camera",
                    "source": self.camera.url,
                    "formats": ["Code128"],
                    "try_rotate": False,
                },
                "bench_scanner": {"driver": "scanner", "url": self.bench_scanner.url},
                "bench_scale": {
                    "driver": "scale",
                    "protocol": "toledo-8217",
                    "url": self.bench_scale.path,
                    "bytesize": 8,
                    "parity": "N",
                    "poll_interval_s": 0.1,
                },
                "gate_scanner": {"driver": "scanner", "url": self.gate_scanner.url},
            },
            "stations": [
                {
                    "name": "line-1",
                    "kind": "conveyor",
                    "io": "io1",
                    "photo_eye": "photo_eye_1",
                    "diverter": {"release": "diverter_left", "inspect": "diverter_right"},
                    "scanner": "line_scanner",
                    "scale": "line_scale",
                    "camera": "line_camera",
                    # the simulated line in seconds (firmware_sim/scenario.py plays it so): the scan
                    # comes 0.06 s after the leading edge, the parcel sits on the scale while it is
                    # at the photo-eye, the diverter is 0.5 s down the belt
                    "tracking": {
                        "scanner": {"from_s": 0.0, "to_s": 0.1},
                        "scale": {"from_s": 0.0, "to_s": 0.0},
                        "camera_s": 0.03,
                        "diverter": {"from_s": 0.5, "to_s": 0.6},
                        "max_parcel_s": 1.0,
                        "margin_s": 0.03,
                    },
                },
                {"name": "bench-1", "kind": "manual", "scanner": "bench_scanner", "scale": "bench_scale"},
                {
                    "name": "gate-1",
                    "kind": "gate",
                    "trigger": {"device": "io1", "point": "loop"},
                    "scanner": "gate_scanner",
                    "io": "io1",
                    "barrier": "barrier",
                    "barrier_open": "barrier_open",
                    "pulse_s": 1.0,
                },
            ],
        }
