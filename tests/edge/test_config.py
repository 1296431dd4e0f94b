"""The shipped example configuration is valid; mistakes are reported with the key named."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bondgate.config import ConfigError, load_settings
from edge.config import EdgeSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "edge.toml"


def test_the_example_config_loads() -> None:
    settings = load_settings(EdgeSettings, EXAMPLE)
    assert [s.name for s in settings.stations] == ["line-1", "bench-1", "gate-1"]
    assert settings.devices["io1"].io.outputs["barrier"].safe is False


def test_errors_name_the_key(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace('scanner = "hand_scanner"', 'scanner = "hand_scaner"')
    text = text.replace("percent = 5", 'percent = "lots"')
    bad = tmp_path / "edge.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(EdgeSettings, bad)
    assert "tolerance.percent" in str(err.value)
    data = tomllib.loads(text.replace('percent = "lots"', "percent = 5"))
    bad.write_text(EXAMPLE.read_text().replace('scanner = "hand_scanner"', 'scanner = "hand_scaner"'))
    with pytest.raises(ConfigError, match=r"stations.1.scanner: no device 'hand_scaner'"):
        load_settings(EdgeSettings, bad)
    assert data["park_id"] == "HK-FTZ-1"
