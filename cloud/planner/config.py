"""Settings of the background planner and the saga runner."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.config import Section


class PlannerConfig(Section):
    enabled: bool = True
    model_path: Path | None = Field(
        default=None, description="GGUF for the LLM planner; none = deterministic"
    )
    schedule_s: float = Field(
        default=60.0, gt=0, description="period of the scheduled planning round"
    )
    step_deadline_s: float = Field(
        default=10.0, gt=0, description="default time a step has to be acked"
    )
    repeated_action_threshold: int = Field(
        default=3, ge=1, description="reflex firings that trigger a plan"
    )
