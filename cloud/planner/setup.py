"""The agent registry a planner starts with: built-in planners, then plug-ins."""

from __future__ import annotations

import logging

from cloud.agents import AgentRegistry, load_configured, load_entry_points
from cloud.planner.config import PlannerConfig
from cloud.planner.deterministic import DeterministicPlanner
from cloud.planner.llm import LlamaCppBackend, LlmBackend, LlmPlanner, llama_cpp_available

log = logging.getLogger(__name__)

# Last in line: it always has an answer for the shipped scenarios.
DETERMINISTIC_PRIORITY = 1000


def build_registry(
    cfg: PlannerConfig, llm_backend: LlmBackend | None = None
) -> tuple[AgentRegistry, LlmPlanner | None]:
    """The registry, and the LLM planner in it (the caller closes it) if one is configured."""
    registry = AgentRegistry(timeout_s=cfg.agent_timeout_s, cooldown_s=cfg.agent_cooldown_s)
    registry.add(DeterministicPlanner(cfg.scenarios), priority=DETERMINISTIC_PRIORITY)
    llm = _llm_planner(cfg, llm_backend)
    if llm is not None:
        registry.add(llm, priority=cfg.llm.priority)
    if cfg.entry_points:
        load_entry_points(registry)
    load_configured(registry, cfg.agents)
    return registry, llm


def _llm_planner(cfg: PlannerConfig, backend: LlmBackend | None) -> LlmPlanner | None:
    if backend is not None:
        return LlmPlanner(backend, cfg.llm)
    if cfg.model_path is None:
        return None
    if not llama_cpp_available():
        log.warning(
            "planner.model_path is set but llama-cpp-python is not installed "
            "(pip install 'baton[llm]'); planning deterministically"
        )
        return None
    if not cfg.model_path.is_file():
        log.warning("planner model %s not found; planning deterministically", cfg.model_path)
        return None
    return LlmPlanner(LlamaCppBackend(cfg.model_path, cfg.llm), cfg.llm)
