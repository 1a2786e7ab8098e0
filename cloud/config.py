"""`cloud.toml`: one orchestrator replica's settings; `BATON_CLOUD_*` overrides (nested `__`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cloud.planner.config import PlannerConfig
from shared.config import BatonSettings, Section, load_config


class HttpConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(
        default=8080, ge=0, le=65535, description="API + dashboard; 0 = any free port"
    )


class CloudConfig(BatonSettings):
    model_config = SettingsConfigDict(env_prefix="BATON_CLOUD_")

    nats_url: str = Field(
        default="nats://127.0.0.1:4222", description="the hub (any node of the cluster)"
    )
    replica: str | None = Field(
        default=None, description="replica name in logs and metrics; default host-pid"
    )
    replicas: int = Field(
        default=1, ge=1, le=5, description="JetStream replicas of hub streams (3 in production)"
    )
    state_dir: Path = Field(default=Path(".baton/cloud"), description="SQLite read model")
    http: HttpConfig = HttpConfig()
    planner: PlannerConfig = PlannerConfig()
    silent_after_s: float = Field(
        default=60.0, gt=0, description="a device not heard from for this long is silent"
    )
    reconcile_interval_s: float = Field(default=5.0, gt=0)


def load_cloud_config(path: Path | str | None = None) -> CloudConfig:
    return load_config(CloudConfig, path)
