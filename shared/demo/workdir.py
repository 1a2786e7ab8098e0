"""The demo's state directory: everything a run writes, in one folder the user can delete.

    DIR/.baton-demo      marker: this folder belongs to `baton demo`
    DIR/nats/hub         hub nats-server: config, log, JetStream store
    DIR/nats/edge-gw1    leaf nats-server: config, log, JetStream store (UPLINK)
    DIR/cloud            the orchestrator's SQLite read model and plan mirror
    DIR/edge             the edge daemon's SQLite state
    DIR/logs             one log per child process (cloud, edge, sim)
    DIR/sim.json         firmware-sim's own summary

Each run starts from empty stores, so its summary counts only what it did. A folder
that exists, holds anything, and has no marker is refused rather than emptied: `--dir ~`
must never delete a home directory.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from shared.demo.errors import DemoError

DEFAULT_DIR: Final = Path(".baton/demo")
MARKER: Final = ".baton-demo"
_PARTS: Final = ("nats", "cloud", "edge", "logs", "sim.json")


@dataclass(frozen=True, slots=True)
class Workdir:
    root: Path

    @property
    def nats(self) -> Path:
        return self.root / "nats"

    @property
    def cloud(self) -> Path:
        return self.root / "cloud"

    @property
    def edge(self) -> Path:
        return self.root / "edge"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def sim_summary(self) -> Path:
        return self.root / "sim.json"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def prepare(self) -> None:
        """Empty what a previous run left (only our own parts) and create the layout."""
        root = self.root
        if root.exists() and not root.is_dir():
            raise DemoError(f"--dir {root} is a file, not a directory")
        if root.is_dir() and any(root.iterdir()) and not (root / MARKER).exists():
            raise DemoError(
                f"--dir {root} is not empty and was not made by `baton demo`; "
                "choose an empty or new directory"
            )
        for part in _PARTS:
            path = root / part
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        for folder in (self.nats, self.cloud, self.edge, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        (root / MARKER).write_text("state of `baton demo`; safe to delete\n", encoding="utf-8")
