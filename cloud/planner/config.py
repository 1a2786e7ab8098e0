"""Settings of the background planner and the saga runner: `[planner]` in `cloud.toml`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from cloud.agents.config import AgentEntry
from shared.config import Section


class LlmConfig(Section):
    """The LLM planner (llama-cpp-python over a GGUF file)."""

    n_ctx: int = Field(default=4096, ge=512, description="context window in tokens")
    max_tokens: int = Field(default=768, ge=64, description="cap on one generated plan")
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    n_threads: int | None = Field(default=None, ge=1, description="none = llama.cpp's choice")
    seed: int | None = Field(
        default=None, ge=0, description="sampling seed for reproducible plans; none = random"
    )
    max_steps: int = Field(default=8, ge=1, le=64, description="cap on steps it may propose")
    priority: int = Field(default=10, description="registry order; before the deterministic")


class ScenarioConfig(Section):
    """Knobs of the deterministic planner's shipped scenarios."""

    reduced_load: float = Field(
        default=0.5, ge=0.0, le=1.0, description="pump load while maintenance is pending"
    )
    normal_load: float = Field(
        default=1.0, ge=0.0, le=1.0, description="load restored when the twin reports none"
    )
    setpoint_delta: float = Field(
        default=2.0, gt=0, description="how far a rebalance lowers a hot device's setpoint"
    )
    default_setpoint: float = Field(
        default=60.0, description="setpoint assumed when the twin reports none"
    )
    heat_rules: list[str] = Field(
        default_factory=lambda: ["overheat", "temp"],
        description="rules whose repeated firing means a site runs hot (substring match)",
    )


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
    repeated_action_window_s: float = Field(
        default=300.0, gt=0, description="window in which those firings are counted"
    )
    anomaly_min_score: float | None = Field(
        default=None,
        description="a model decision triggers only at or above this score "
        "(none = the decision's own threshold, or any score when it has none)",
    )
    cooldown_s: float = Field(
        default=600.0,
        ge=0,
        description="a plan with the same key is not reopened this soon after it ended",
    )
    lease_s: float = Field(
        default=10.0,
        ge=1.0,
        description="a saga whose owner stopped renewing for this long is taken over",
    )
    agent_timeout_s: float = Field(default=60.0, gt=0, description="one agent's planning time")
    agent_cooldown_s: float = Field(
        default=60.0, ge=0, description="a failed agent is skipped this long, then retried"
    )
    consumer: str = Field(
        default="cloud-planner", description="shared durable on FLEET for decisions and status"
    )
    ack_consumer: str = Field(
        default="cloud-planner-acks", description="shared durable on FLEET for command acks"
    )
    ack_wait_s: float = Field(
        default=120.0, gt=0, description="redeliver a trigger not acked (planned) this soon"
    )
    max_deliver: int = Field(default=5, ge=1, description="attempts at one FLEET message")
    plans_bucket: str = Field(default="plans", description="hub KV: plan records (truth)")
    coord_bucket: str = Field(
        default="planner", description="hub KV: dedupe locks, step acks, firing windows"
    )
    leases_bucket: str = Field(default="plan_leases", description="hub KV: saga ownership")
    retention_s: float = Field(
        default=30 * 86400.0, gt=0, description="ended plans are kept this long in the hub"
    )
    entry_points: bool = Field(default=True, description="load `baton.agents` entry points")
    agents: list[AgentEntry] = Field(default_factory=list, description="config plug-ins")
    llm: LlmConfig = LlmConfig()
    scenarios: ScenarioConfig = ScenarioConfig()
