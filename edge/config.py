"""`edge.toml`: the edge daemon's settings, validated once at start-up.

Every field has a default that works on a fresh gateway next to `baton nats up`;
`BATON_EDGE_<FIELD>` (nested with `__`) overrides the file, e.g.
`BATON_EDGE_GATEWAY=gw-7` or `BATON_EDGE_UPLINK__MAX_BYTES=500000000`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from edge.handoff.config import HandoffConfig
from edge.uplink.config import DownlinkConfig, UplinkConfig
from shared.agent.config import AgentConfig
from shared.config import BatonSettings, Section, load_config
from shared.messages.base import Params


class IngestConfig(Section):
    source: Literal["nats", "mqtt"] = Field(
        default="nats", description="nats: the leaf's own subjects; mqtt: any MQTT 3.1.1 broker"
    )
    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883", description="used when source = mqtt")
    mqtt_username: str | None = Field(
        default=None, description="MQTT login, if the broker wants one"
    )
    mqtt_password: str | None = Field(
        default=None, description="MQTT password (prefer the env var)"
    )
    max_payload_bytes: int = Field(default=256 * 1024, gt=0)


class RuleConfig(Section):
    """One declarative reflex rule. Scope: `device`, else `dclass`, else every device."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_.:-]{0,63}$")
    version: str = "1"
    metric: str
    kind: Literal["threshold", "rate", "window"] = "threshold"
    device: str | None = None
    dclass: str | None = None
    above: float | None = Field(default=None, description="fire when the value is above this")
    below: float | None = Field(default=None, description="fire when the value is below this")
    clear: float | None = Field(default=None, description="hysteresis: re-arm only past this value")
    debounce: int = Field(default=1, ge=1, description="consecutive readings past the limit")
    window: int = Field(default=10, ge=1, description="readings aggregated (kind = window)")
    agg: Literal["mean", "max", "min"] = "mean"
    rate_per_s: float | None = Field(default=None, description="|d value / dt| limit (kind = rate)")
    action: str
    params: Params = Field(default_factory=dict)
    cooldown_s: float = Field(default=5.0, ge=0, description="minimum time between two firings")
    deadline_ms: int = Field(default=2000, gt=0, description="command deadline after issue")

    @model_validator(mode="after")
    def _has_limit(self) -> RuleConfig:
        if self.kind == "rate" and self.rate_per_s is None:
            raise ValueError("a rate rule needs rate_per_s")
        if self.kind != "rate" and self.above is None and self.below is None:
            raise ValueError("a threshold or window rule needs above or below")
        return self


class ModelConfig(Section):
    """An ONNX anomaly model scoring a sliding window of one device class's readings."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_.:-]{0,63}$")
    path: Path | None = Field(default=None, description="default: the model shipped with baton")
    dclass: str | None = None
    device: str | None = None
    threshold: float | None = Field(default=None, description="default: the model card's")
    action: str = "maintenance_alert"
    params: Params = Field(default_factory=dict)
    cooldown_s: float = Field(default=30.0, ge=0)
    deadline_ms: int = Field(default=5000, gt=0)


class ActuateConfig(Section):
    """Limits on commands that come from outside the rules (downlink, sessions, twin)."""

    allow: list[str] = Field(
        default_factory=list,
        description="actions allowed besides those the rules and models use themselves",
    )
    bounds: dict[str, dict[str, tuple[float, float]]] = Field(
        default_factory=dict, description="per action, per numeric param: [min, max]"
    )
    format: Literal["msgpack", "json"] = Field(
        default="msgpack", description="encoding of commands sent to devices"
    )


class StoreConfig(Section):
    flush_interval_ms: int = Field(
        default=200, gt=0, description="audit batch period, off the hot path"
    )
    quarantine_max_rows: int = Field(default=10_000, gt=0)
    decisions_max_rows: int = Field(default=100_000, gt=0)


class HttpConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(
        default=9464, ge=0, le=65535, description="metrics + health; 0 = any free port"
    )
    enabled: bool = True


def _default_rules() -> list[RuleConfig]:
    return [
        RuleConfig(
            name="overheat",
            metric="temp_c",  # what firmware-sim and the shipped model call it
            above=70.0,
            clear=65.0,
            debounce=2,
            action="fan",
            params={"on": True},
            cooldown_s=5.0,
        )
    ]


class EdgeConfig(BatonSettings):
    model_config = SettingsConfigDict(env_prefix="BATON_EDGE_")

    gateway: str = Field(default="gw1", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    nats_url: str = Field(
        default="nats://127.0.0.1:4222", description="the gateway's leaf nats-server"
    )
    state_dir: Path = Field(default=Path(".baton/edge"), description="SQLite database and caches")
    ingest: IngestConfig = IngestConfig()
    rules: list[RuleConfig] = Field(default_factory=_default_rules)
    models: list[ModelConfig] = Field(default_factory=list)
    actuate: ActuateConfig = ActuateConfig()
    store: StoreConfig = StoreConfig()
    uplink: UplinkConfig = UplinkConfig()
    downlink: DownlinkConfig = DownlinkConfig()
    http: HttpConfig = HttpConfig()
    agent: AgentConfig = AgentConfig()
    handoff: HandoffConfig = HandoffConfig()


def load_edge_config(path: Path | str | None = None) -> EdgeConfig:
    return load_config(EdgeConfig, path)
