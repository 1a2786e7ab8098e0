"""Config loading: a TOML file, then `BATON_*` environment overrides, validated once.

Each package defines its settings as a subclass of `BatonSettings` with an `env_prefix`
(e.g. `BATON_EDGE_`); nested fields are overridden with `__`, so
`BATON_EDGE_UPLINK__MAX_BYTES=1000000` sets `[uplink] max_bytes`. Every field has a
default that works, so running with no file at all is valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.compat import tomllib
from shared.errors import ConfigError

S = TypeVar("S", bound="BatonSettings")


class Section(BaseModel):
    """A `[table]` of a config file. Unknown keys are errors: a typo must not be ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BatonSettings(BaseSettings):
    """Base of every settings model: unknown keys are errors (a typo must not be ignored)."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="forbid", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment beats the file, so an operator can fix one field in a systemd
        # drop-in without editing the config the installer wrote.
        return (env_settings, init_settings)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
            return data
    except FileNotFoundError as exc:
        raise ConfigError("file not found", file=str(path)) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=str(path)) from exc


def load_config(cls: type[S], path: Path | str | None = None, **overrides: Any) -> S:
    """Load `cls` from `path` (optional) plus the environment; ConfigError on any problem."""
    data = read_toml(Path(path)) if path is not None else {}
    data.update(overrides)
    try:
        return cls(**data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise ConfigError(first["msg"], file=str(path) if path else None, field=field) from exc


def redact_url(url: str) -> str:
    """`url` without its user and password, for logs and error lines: the leaf URL of an
    installed gateway carries the edge's password (deploy/edge/install.sh)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
