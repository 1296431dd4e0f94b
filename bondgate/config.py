"""Load a process's TOML configuration into pydantic-settings, with errors that name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names the file and the keys."""


def load_settings(cls: type[S], path: Path | None) -> S:
    """Read `path` (TOML) into `cls`; environment variables with the class's prefix override it."""
    data: dict = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: no such configuration file") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return cls(**data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {key}: {err['msg']}")
        raise ConfigError(f"{path or 'configuration'}: invalid settings\n" + "\n".join(lines)) from exc
