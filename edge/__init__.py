"""The gateway side of baton: `baton edge run` and the `EdgeDaemon` behind it.

    from edge import EdgeDaemon, load_edge_config

    async with EdgeDaemon(load_edge_config("edge.toml"), config_path="edge.toml") as daemon:
        await daemon.wait()

The names below load on first use, so `import edge.errors` (which every edge module
does) stays cheap and a `baton models` command does not import the daemon.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.config import EdgeConfig, load_edge_config
    from edge.daemon import DaemonStats, EdgeDaemon

__all__ = ["DaemonStats", "EdgeConfig", "EdgeDaemon", "load_edge_config"]

_WHERE = {
    "DaemonStats": "edge.daemon",
    "EdgeDaemon": "edge.daemon",
    "EdgeConfig": "edge.config",
    "load_edge_config": "edge.config",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'edge' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
