"""The LLM planner: llama-cpp-python over a GGUF model, constrained to the plan schema.

    LlmBackend        the seam: `generate(messages, schema) -> str`, `aclose()`
    LlamaCppBackend   the real one; `llama_cpp` is imported only when it first generates
    LlmPlanner        the agent: prompt → backend → `schema.parse_plan` → Proposal

Invalid output raises `PlanError`; the registry counts it and the deterministic planner
answers instead.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from cloud.agents.base import AgentContext, Proposal, Trigger
from cloud.errors import PlanError
from cloud.planner.actions import ACTIONS
from cloud.planner.config import LlmConfig
from cloud.planner.prompt import messages, targets
from cloud.planner.schema import parse_plan, plan_schema
from shared import trace

Messages = list[dict[str, str]]


class LlmBackend(Protocol):
    async def generate(self, messages: Messages, schema: dict[str, Any]) -> str:
        """The model's reply to `messages`, constrained to JSON matching `schema`."""
        ...

    async def aclose(self) -> None: ...


def llama_cpp_available() -> bool:
    """True when llama-cpp-python is installed (without importing it)."""
    return importlib.util.find_spec("llama_cpp") is not None


class LlamaCppBackend:
    """llama.cpp in a worker thread, one generation at a time (a model is not reentrant)."""

    def __init__(self, model_path: Path, cfg: LlmConfig) -> None:
        self._path = model_path
        self._cfg = cfg
        self._llm: Any = None
        self._lock = asyncio.Lock()

    async def generate(self, messages: Messages, schema: dict[str, Any]) -> str:
        async with self._lock:
            if self._llm is None:
                self._llm = await asyncio.to_thread(self._load)
            reply = await asyncio.to_thread(
                self._llm.create_chat_completion,
                messages=messages,
                response_format={"type": "json_object", "schema": schema},
                max_tokens=self._cfg.max_tokens,
                temperature=self._cfg.temperature,
            )
        return str(reply["choices"][0]["message"]["content"] or "")

    def _load(self) -> Any:
        try:
            import llama_cpp  # heavy and optional: only a planner with a model pays for it
        except ImportError as exc:
            raise PlanError("llama-cpp-python is not installed (pip install baton[llm])") from exc
        seed = llama_cpp.LLAMA_DEFAULT_SEED if self._cfg.seed is None else self._cfg.seed
        return llama_cpp.Llama(
            model_path=str(self._path),
            n_ctx=self._cfg.n_ctx,
            n_threads=self._cfg.n_threads,
            seed=seed,
            verbose=False,
        )

    async def aclose(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None and hasattr(llm, "close"):
            await asyncio.to_thread(llm.close)


class LlmPlanner:
    """The LLM planner agent; handles edge events and requests (not the periodic round)."""

    id = "llm"
    handles = frozenset({"anomaly", "repeated_action", "offline", "request"})
    tools = frozenset(ACTIONS)

    def __init__(self, backend: LlmBackend, cfg: LlmConfig | None = None) -> None:
        self._backend = backend
        self._cfg = cfg or LlmConfig()

    async def propose(self, trigger: Trigger, ctx: AgentContext) -> Sequence[Proposal]:
        devices = targets(ctx.fleet, trigger)
        if not devices:
            return []  # nothing known to act on: let the next planner try
        pairs = [(twin.gw, twin.device) for twin in devices]
        schema = plan_schema(sorted(ACTIONS), self._cfg.max_steps, pairs)
        text = await self._backend.generate(messages(trigger, ctx, ACTIONS, devices), schema)
        plan = parse_plan(
            text, trigger=trigger.kind, default_deadline_ms=ctx.step_deadline_ms, fleet=ctx.fleet
        )
        if trigger.traceparent:
            plan = plan.model_copy(update={"traceparent": trace.child_of(trigger.traceparent)})
        return [Proposal(plan, f"llm.{trigger.scope}")]

    async def aclose(self) -> None:
        await self._backend.aclose()
