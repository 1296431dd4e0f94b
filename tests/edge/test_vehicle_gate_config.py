"""A vehicle gate lane's configuration is checked at start, each mistake naming its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.config import EdgeSettings
from firmware_sim.gateio import vehicle_lane_map
from kernel.config import ConfigError, load_settings, toml_dumps


def _config(tmp_path: Path, **station: Any) -> dict[str, Any]:
    lane: dict[str, Any] = {
        "name": "lane-1",
        "kind": "vehicle_gate",
        "io": "lane_io",
        "points": {
            p: p
            for p in (
                "entry_loop",
                "platform_back",
                "platform_front",
                "safety_loop",
                "exit_loop",
                "barrier",
                "barrier_open",
                "barrier_closed",
            )
        },
        "scale": "bridge",
        "card": "e_plate",
        "plate": {"device": "lane_mqtt", "sensor": "plate"},
        "container": {"device": "lane_mqtt", "sensor": "container"},
        "seal": {"device": "lane_mqtt", "sensor": "seal"},
        "lane_id": "in-1",
        **station,
    }
    (tmp_path / "feed.pem").write_text("unused")
    return {
        "park_id": "P1",
        "edge_id": "edge-p1",
        "central": {
            "url": "http://127.0.0.1:1",
            "token": "bg_token_for_a_test",
            "public_key": str(tmp_path / "feed.pem"),
        },
        "devices": {
            "bridge": {"driver": "scale", "protocol": "toledo-continuous", "url": "/dev/null"},
            "lane_io": {
                "driver": "gateio",
                "endpoint": {"kind": "tcp", "host": "127.0.0.1", "port": 502},
                "io": vehicle_lane_map().model_dump(),
            },
            "e_plate": {"driver": "id-reader", "url": "/dev/null"},
            "lane_mqtt": {
                "driver": "mqtt-sensors",
                "broker": {"port": 1883},
                "sensors": [
                    {"name": "plate", "type": "plate", "topic": "lane/in-1/plate"},
                    {"name": "container", "type": "container", "topic": "lane/in-1/container"},
                    {"name": "seal", "type": "seal", "topic": "lane/in-1/seal"},
                ],
            },
        },
        "stations": [{k: v for k, v in lane.items() if v is not None}],
    }


def _load(tmp_path: Path, data: dict[str, Any]) -> EdgeSettings:
    path = tmp_path / "edge.toml"
    path.write_text(toml_dumps(data))
    return load_settings(EdgeSettings, path)


def test_a_lane_loads(tmp_path: Path) -> None:
    settings = _load(tmp_path, _config(tmp_path))
    assert settings.stations[0].kind == "vehicle_gate"


@pytest.mark.parametrize(
    ("station", "problem"),
    [
        ({"lane_id": None}, "stations.0.lane_id: a lane reading plates, containers or seals over MQTT needs"),
        ({"card": "bridge"}, "stations.0.card: device 'bridge' is a scale, not a id-reader"),
        ({"plate": {"device": "lane_mqtt", "sensor": "plat"}}, "stations.0.plate.sensor: no sensor 'plat'"),
        (
            {"seal": {"device": "lane_mqtt", "sensor": "plate"}},
            "stations.0.seal.sensor: sensor 'plate' is a plate",
        ),
        (
            {
                "points": {
                    "entry_loop": "entry_lop",
                    "platform_back": "platform_back",
                    "platform_front": "platform_front",
                    "safety_loop": "safety_loop",
                    "exit_loop": "exit_loop",
                    "barrier": "barrier",
                    "barrier_open": "barrier_open",
                }
            },
            "stations.0.points.entry_loop: no input 'entry_lop' on device 'lane_io'",
        ),
        (
            {
                "points": {
                    "entry_loop": "entry_loop",
                    "platform_back": "platform_back",
                    "platform_front": "platform_front",
                    "safety_loop": "safety_loop",
                    "exit_loop": "exit_loop",
                    "barrier": "barrier_open",
                    "barrier_open": "barrier_open",
                }
            },
            "stations.0.points.barrier: 'barrier_open' on device 'lane_io' is an input, not an output",
        ),
    ],
)
def test_mistakes_name_their_key(tmp_path: Path, station: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, _config(tmp_path, **station))
    assert any(problem in p for p in err.value.problems), err.value.problems
