"""Configuration errors name the key; logs are JSON lines off a terminal."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from central.config import CentralSettings
from kernel.config import ConfigError, load_settings
from kernel.logs import JsonFormatter


def test_bad_keys_are_named(tmp_path: Path) -> None:
    config = tmp_path / "central.toml"
    config.write_text('port = "eighty"\nmode = "chaos"\n[risk]\nsampling_rate = 2\n')
    with pytest.raises(ConfigError) as err:
        load_settings(CentralSettings, config)
    text = str(err.value)
    assert "port" in text and "mode" in text and "risk.sampling_rate" in text


def test_unknown_keys_and_broken_toml_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "central.toml"
    config.write_text('databse = "x.db"\n')
    with pytest.raises(ConfigError, match="databse"):
        load_settings(CentralSettings, config)
    config.write_text("port = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(CentralSettings, config)
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_settings(CentralSettings, tmp_path / "missing.toml")


def test_json_log_lines_carry_extras() -> None:
    record = logging.LogRecord("central.http", logging.INFO, __file__, 1, "request", (), None)
    record.status = 200
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "request" and line["status"] == 200 and line["level"] == "info"


def test_environment_overrides_the_file_key_by_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator's BONDGATE_CENTRAL_* variable wins over the same key in the TOML file (a
    container points central at PostgreSQL without editing the mounted file); nested keys merge."""
    config = tmp_path / "central.toml"
    config.write_text('database = "var/central.db"\nport = 8600\n[risk]\nsampling_rate = 0.5\nseed = 3\n')
    monkeypatch.setenv("BONDGATE_CENTRAL_DATABASE", "postgresql://bondgate@db:5432/bondgate")
    monkeypatch.setenv("BONDGATE_CENTRAL_RISK__SEED", "7")
    settings = load_settings(CentralSettings, config)
    assert isinstance(settings, CentralSettings)
    assert settings.database == "postgresql://bondgate@db:5432/bondgate"
    assert (settings.port, settings.risk.sampling_rate, settings.risk.seed) == (8600, 0.5, 7)


@pytest.mark.parametrize("value", ["", "   ", "mysql://db/central", "sqlite:///x.db"])
def test_a_database_that_is_neither_a_file_nor_postgresql_is_refused(tmp_path: Path, value: str) -> None:
    config = tmp_path / "central.toml"
    config.write_text(f'database = "{value}"\n')
    with pytest.raises(ConfigError, match="database"):
        load_settings(CentralSettings, config)
