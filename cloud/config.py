"""`cloud.toml`: one orchestrator replica's settings; `BATON_CLOUD_*` overrides (nested `__`).

Every field has a default that works against a local `baton nats up` hub, so a replica
runs with no file at all. `cloud/cloud.example.toml` documents each field.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cloud.planner.config import PlannerConfig
from shared.config import BatonSettings, Section, load_config
from shared.subjects import ID_PATTERN


class HttpConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(
        default=8080, ge=0, le=65535, description="API + dashboard; 0 = any free port"
    )
    max_body_bytes: int = Field(
        default=64 * 1024, gt=0, description="larger request bodies get 413"
    )
    graceful_shutdown_s: float = Field(
        default=5.0, gt=0, description="time open requests get to finish on SIGTERM"
    )


class IngestConfig(Section):
    durable: str = Field(
        default="cloud-ingest",
        pattern=ID_PATTERN,
        description="shared durable pull consumer on FLEET; every replica binds to it",
    )
    workers: int = Field(default=2, ge=1, le=32, description="fetch loops per replica")
    batch: int = Field(default=256, ge=1, le=10_000, description="messages per fetch")
    ack_wait_s: float = Field(
        default=30.0, gt=0, description="an unacked message is redelivered after this"
    )
    max_ack_pending: int = Field(
        default=20_000, ge=1, description="messages in flight across all replicas"
    )


class ReadModelConfig(Section):
    path: Path | None = Field(
        default=None,
        description="SQLite file; default <state_dir>/readmodel[-<replica>].sqlite",
    )
    backfill_minutes: int = Field(
        default=60, ge=0, description="history replayed from FLEET into a new read model"
    )
    retention_minutes: int = Field(
        default=24 * 60, ge=1, description="readings and rollups kept for queries"
    )


class CloudConfig(BatonSettings):
    model_config = SettingsConfigDict(env_prefix="BATON_CLOUD_")

    nkey_file: Path | None = Field(
        default=None,
        description="NKEY seed of the orchestrator (`baton creds init`); none = no auth",
    )
    nats_url: str = Field(
        default="nats://127.0.0.1:4222", description="the hub (any node of the cluster)"
    )
    replica: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="replica name in logs and metrics; default host-pid",
    )
    replicas: int = Field(
        default=1, ge=1, le=5, description="JetStream replicas of hub streams (3 in production)"
    )
    state_dir: Path = Field(default=Path(".baton/cloud"), description="SQLite read model")
    http: HttpConfig = HttpConfig()
    ingest: IngestConfig = IngestConfig()
    readmodel: ReadModelConfig = ReadModelConfig()
    planner: PlannerConfig = PlannerConfig()
    silent_after_s: float = Field(
        default=60.0, gt=0, description="a device not heard from for this long is silent"
    )
    reconcile_interval_s: float = Field(
        default=5.0, gt=0, description="period of the drift and silence scan"
    )
    resend_after_s: float = Field(
        default=30.0,
        gt=0,
        description="desired state not applied after this is sent again (doubling, capped)",
    )

    @property
    def replica_name(self) -> str:
        if self.replica:
            return self.replica
        host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())
        return f"{host[:40] or 'cloud'}-{os.getpid()}"

    def state_file(self, stem: str) -> Path:
        """`<state_dir>/<stem>-<replica>.sqlite`, or `<stem>.sqlite` when no replica is named
        (the default name holds the pid, and a file per restart would pile up)."""
        suffix = f"-{self.replica}" if self.replica else ""
        return self.state_dir / f"{stem}{suffix}.sqlite"

    @property
    def readmodel_path(self) -> Path:
        return self.readmodel.path or self.state_file("readmodel")


def load_cloud_config(path: Path | str | None = None, **overrides: object) -> CloudConfig:
    return load_config(CloudConfig, path, **overrides)
