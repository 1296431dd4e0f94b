"""Load a process's TOML configuration into pydantic-settings, with errors that name the key.

Every problem is one line, `<file>: <key>: <what is wrong>`, so a process that refuses its
configuration says why in as many lines as there are mistakes, never with a traceback.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import tomli_w
from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsError

S = TypeVar("S", bound=BaseSettings)


class ConfigError(Exception):
    """A configuration that cannot be used; the message names the file and the keys, one per line."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems) or [message]

    @classmethod
    def of(cls, problems: Iterable[tuple[str, str]], where: Path | str | None = None) -> ConfigError:
        """One error for several `(key, what is wrong)` problems, each a line of its own."""
        prefix = f"{where}: " if where is not None else ""
        lines = [f"{prefix}{key}: {why}" for key, why in problems]
        return cls("\n".join(lines), lines)


class KeyedProblems(ValueError):
    """Raised by a model validator that checks several keys at once (references between sections):
    each problem keeps its own key, so the error names it rather than the model's top level."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{key}: {why}" for key, why in problems))
        self.problems = list(problems)


def load_settings(cls: type[S], path: Path | None) -> S:
    """Read `path` (TOML) into `cls`; environment variables with the class's prefix override it."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: no such configuration file") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the configuration file: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return _env_first(cls)(**data)
    except ValidationError as exc:
        raise ConfigError.of(_problems(exc, data), path or "configuration") from exc
    except SettingsError as exc:  # an environment variable that is not the JSON its key needs
        raise ConfigError(f"{path or 'configuration'}: environment: {exc}") from exc


def _env_first(cls: type[S]) -> type[S]:
    """`cls` with its environment variables ranked above the values it is given (pydantic-settings
    ranks given values first): the TOML file is passed in as given values, and an operator's
    `BONDGATE_…` variable must override the file, as the configuration tables say."""

    class EnvFirst(cls):  # type: ignore[valid-type, misc]
        @classmethod
        def settings_customise_sources(
            cls_,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return env_settings, init_settings, dotenv_settings, file_secret_settings

    EnvFirst.__name__ = EnvFirst.__qualname__ = cls.__name__
    return EnvFirst


def _problems(exc: ValidationError, data: Mapping[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for err in exc.errors():
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, KeyedProblems):
            out += cause.problems
            continue
        msg = err["msg"].removeprefix("Value error, ")
        loc = err["loc"]
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, str((err.get("ctx") or {}).get("discriminator", "")).strip("'"))  # `kind`, `driver`
        out.append((_key(loc, data), msg))
    return out


def _key(loc: tuple[int | str, ...], data: Any) -> str:
    """The dotted key of an error's location, as written in the file: pydantic puts the tag of a
    tagged union in the location (`devices.io1.gateio.io`), which is no key of the file."""
    parts: list[str] = []
    for part in loc:
        if isinstance(data, Mapping) and part not in data and part in data.values():
            continue  # the union's tag (`driver = "gateio"`, `kind = "conveyor"`)
        parts.append(str(part))
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            data = None
    return ".".join(parts) or "(top level)"


def toml_dumps(data: Mapping[str, Any]) -> str:
    """`data` as a TOML configuration file (tomli-w), for the demo, the simulators and the tests that
    write one: `None` values are left out (TOML has no null) and paths and decimals become strings,
    which the settings models parse again."""
    return tomli_w.dumps(_tomlable(data))


def _tomlable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _tomlable(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_tomlable(v) for v in value if v is not None]
    if isinstance(value, (Path, Decimal)):
        return str(value)
    return value
