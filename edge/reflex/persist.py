"""Rules and models pushed from the hub, kept in `state_dir` so a restart keeps them.

    <state_dir>/rules.pushed.json          {"version": ..., "rules": [...]}: in force over
                                           the config file's rules until a SIGHUP
    <state_dir>/models/<name>-<ver>.onnx   a pushed model, with its card beside it
    <state_dir>/models/<name>.json         {"path": ..., "version": ...}: the one in force

A pushed model is new weights for a model the gateway already runs: its card is the
running model's card with the new sha256, version and (optionally) threshold, so
`OnnxScorer.load` checks the file as it checks a shipped one.

Every write is atomic (temp file, fsync, rename): a power cut leaves the old file or the
new one, never half of one. All functions block; the daemon calls them off the loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from edge.errors import ModelError

log = logging.getLogger(__name__)

PUSHED_RULES = "rules.pushed.json"
MODELS_DIR = "models"
CARD_SUFFIX = ".card.json"


@dataclass(frozen=True, slots=True)
class PushedRules:
    version: str
    rules: list[dict[str, JsonValue]]


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself must survive a power cut
    finally:
        os.close(dir_fd)


def save_pushed_rules(state_dir: Path, pushed: PushedRules) -> None:
    doc = {"version": pushed.version, "rules": pushed.rules}
    write_atomic(state_dir / PUSHED_RULES, json.dumps(doc, indent=1).encode())


def load_pushed_rules(state_dir: Path) -> PushedRules | None:
    path = state_dir / PUSHED_RULES
    try:
        doc = json.loads(path.read_bytes())
        return PushedRules(str(doc["version"]), list(doc["rules"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("ignoring unreadable %s: %s", path, exc)
        return None


def clear_pushed_rules(state_dir: Path) -> None:
    (state_dir / PUSHED_RULES).unlink(missing_ok=True)


def save_pushed_model(
    state_dir: Path, name: str, version: str, data: bytes, *, like: Path, threshold: float | None
) -> Path:
    """Write the model and its card (from the running model `like`'s card); its path."""
    card_file = like.with_name(like.stem + CARD_SUFFIX)
    try:
        card: dict[str, Any] = json.loads(card_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise ModelError(f"no usable card beside {like} to derive the update's: {exc}") from exc
    card.update(version=version, sha256=hashlib.sha256(data).hexdigest())
    if threshold is not None:
        card["threshold"] = threshold
    model = state_dir / MODELS_DIR / f"{name}-{_safe(version)}.onnx"
    write_atomic(model, data)
    write_atomic(model.with_name(model.stem + CARD_SUFFIX), json.dumps(card, indent=2).encode())
    return model


def mark_model_in_force(state_dir: Path, name: str, path: Path, version: str) -> None:
    doc = {"path": str(path), "version": version}
    write_atomic(state_dir / MODELS_DIR / f"{name}.json", json.dumps(doc).encode())


def pushed_model_path(state_dir: Path, name: str) -> Path | None:
    """The pushed model in force for `name`, if any and still on disk."""
    pointer = state_dir / MODELS_DIR / f"{name}.json"
    try:
        path = Path(json.loads(pointer.read_bytes())["path"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("ignoring unreadable %s: %s", pointer, exc)
        return None
    return path if path.is_file() else None


def _safe(version: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in version)[:64]
