"""`open_backend(config)`: llama.cpp when a model is configured and loads, else the rule
backend, whose notice tells the user plainly why there is no model."""

from __future__ import annotations

import importlib.util
import logging

from shared.agent.backend import InferenceBackend
from shared.agent.config import AgentConfig
from shared.agent.errors import BackendError
from shared.agent.llama import LlamaBackend
from shared.agent.rules import NO_MODEL, RuleBackend

log = logging.getLogger(__name__)

RULES_TAIL = "answering from rules and data."


async def open_backend(config: AgentConfig) -> InferenceBackend:
    """The configured model, or a `RuleBackend` (never raises for a missing model)."""
    path = config.model_path
    if path is None:
        return RuleBackend(NO_MODEL)
    if importlib.util.find_spec("llama_cpp") is None:
        return _rules(f"llama-cpp-python is not installed (pip install 'baton[llm]'); {RULES_TAIL}")
    if not path.is_file():
        return _rules(f"The model file {path} does not exist; {RULES_TAIL}")
    try:
        return await LlamaBackend.open(config)
    except BackendError as exc:
        return _rules(f"The model could not be loaded ({exc}); {RULES_TAIL}")


def _rules(notice: str) -> RuleBackend:
    log.warning("local agent without a model: %s", notice)
    return RuleBackend(notice)
