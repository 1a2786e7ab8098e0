"""The background planner: triggers → agents → plans → sagas of acknowledged commands.

    from cloud.planner import PlannerService, PlannerConfig

    async with PlannerService(nc, js, PlannerConfig(), fleet_view, "replica-1") as planner:
        planner.plans()                                   # newest first (SQLite copy)
        await planner.request_plan("anomaly:gw1/pump-1", "operator asked")

See `service` for the data path, `saga` for how a plan runs, `records` for what is
stored per plan, and `cloud.agents` for plug-in agents.
"""

from cloud.planner.actions import ACTIONS
from cloud.planner.config import LlmConfig, PlannerConfig, ScenarioConfig
from cloud.planner.deterministic import DeterministicPlanner
from cloud.planner.llm import LlamaCppBackend, LlmBackend, LlmPlanner
from cloud.planner.records import PlanRecord, StepEvent
from cloud.planner.service import PlannerService

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
