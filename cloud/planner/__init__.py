"""The background planner: triggers → agents → plans → sagas of acknowledged commands.

    from cloud.planner import PlannerService, PlannerConfig

    async with PlannerService(nc, js, PlannerConfig(), fleet_view, "replica-1") as planner:
        planner.plans()                                   # newest first (SQLite copy)
        await planner.request_plan("anomaly:gw1/pump-1", "operator asked")

See `service` for the data path, `saga` for how a plan runs, `records` for what is
stored per plan, and `cloud.agents` for plug-in agents. Only the settings load with the
package (`cloud.config` imports them); the rest is imported on first use, so a config
check or a replica with the planner off never loads NATS clients, SQLite or llama.cpp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cloud.planner.config import LlmConfig, PlannerConfig, ScenarioConfig

if TYPE_CHECKING:
    from cloud.planner.actions import ACTIONS
    from cloud.planner.deterministic import DeterministicPlanner
    from cloud.planner.llm import LlamaCppBackend, LlmBackend, LlmPlanner
    from cloud.planner.records import PlanRecord, StepEvent
    from cloud.planner.service import PlannerService

_LAZY = {
    "ACTIONS": "cloud.planner.actions",
    "DeterministicPlanner": "cloud.planner.deterministic",
    "LlamaCppBackend": "cloud.planner.llm",
    "LlmBackend": "cloud.planner.llm",
    "LlmPlanner": "cloud.planner.llm",
    "PlanRecord": "cloud.planner.records",
    "StepEvent": "cloud.planner.records",
    "PlannerService": "cloud.planner.service",
}

__all__ = [
    "ACTIONS",
    "DeterministicPlanner",
    "LlamaCppBackend",
    "LlmBackend",
    "LlmConfig",
    "LlmPlanner",
    "PlanRecord",
    "PlannerConfig",
    "PlannerService",
    "ScenarioConfig",
    "StepEvent",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cloud.planner' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
