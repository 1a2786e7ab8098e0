"""The baton cloud orchestrator: fleet ingest, device twins, planner, HTTP API.

    from cloud import Orchestrator, load_cloud_config

    async with Orchestrator(load_cloud_config("cloud.toml")) as orch:
        print(orch.url)

`Orchestrator` is imported on first use, so `cloud.planner` and `cloud.agents` (and a
config check) do not pull in FastAPI and uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloud.config import CloudConfig, load_cloud_config
from cloud.errors import CloudError

if TYPE_CHECKING:
    from cloud.orchestrator import Orchestrator

__all__ = ["CloudConfig", "CloudError", "Orchestrator", "load_cloud_config"]


def __getattr__(name: str) -> Any:
    if name == "Orchestrator":
        from cloud.orchestrator import Orchestrator

        return Orchestrator
    raise AttributeError(f"module 'cloud' has no attribute {name!r}")
