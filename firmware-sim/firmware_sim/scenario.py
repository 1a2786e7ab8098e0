"""Finding and loading scenario files: a path, or the name of one shipped with the package.

Every failure is a `ScenarioError` whose message is `file: field: reason`, so the CLI can
print it as one line.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from firmware_sim.config import Scenario
from firmware_sim.errors import ScenarioError
from shared.compat import tomllib

_SHIPPED = "scenarios"
_SUFFIX = ".toml"


def load_scenario(source: str | Path) -> Scenario:
    """Load and validate a scenario from a file path or a shipped name (`pump-overheat`)."""
    label, text = _read(source)
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"invalid TOML: {exc}", file=label) from exc
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ScenarioError(first["msg"] + more, file=label, field=field) from exc


def list_scenarios() -> list[tuple[str, str]]:
    """(name, description) of every shipped scenario, sorted by name."""
    return [(name, load_scenario(name).description) for name in _shipped_names()]


def _read(source: str | Path) -> tuple[str, str]:
    """(label for errors, file text). A bare name that is not a file is a shipped scenario."""
    path = Path(source)
    looks_like_path = isinstance(source, Path) or path.suffix or len(path.parts) > 1
    if looks_like_path or path.exists():
        try:
            return str(path), path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(exc.strerror or str(exc), file=str(path)) from exc
    shipped = resources.files("firmware_sim").joinpath(_SHIPPED).joinpath(f"{source}{_SUFFIX}")
    if not shipped.is_file():
        names = ", ".join(_shipped_names())
        raise ScenarioError(
            f"no such file or shipped scenario (shipped: {names})", file=str(source)
        )
    return f"{source}{_SUFFIX}", shipped.read_text(encoding="utf-8")


def _shipped_names() -> list[str]:
    folder = resources.files("firmware_sim").joinpath(_SHIPPED)
    return sorted(e.name[: -len(_SUFFIX)] for e in folder.iterdir() if e.name.endswith(_SUFFIX))
