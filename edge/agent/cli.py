"""`baton chat`: a session with the gateway's local agent, in the terminal.

    baton chat --gateway GW [--config edge.toml] [--nats URL] [--model PATH] [--session ID]

Runs beside the edge daemon: it reads the gateway's SQLite (rollups, decisions, twin,
its own sessions), and through the leaf (`--nats`, default the config's) it hears live
readings, actuates through the edge's guard and appends every event to the hub's audit
stream. Without a model file (`--model` or `[agent] model_path`) it says so and answers
from rules and data. Exit codes: 0, 2 for a bad config.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import IO, Any, TypeVar

import click
from nats.aio.client import Client
from pydantic import BaseModel, ValidationError

from edge.agent.chat import ChatLoop, find_handoff
from edge.agent.local import LocalAgent
from edge.config import EdgeConfig
from shared.agent import AgentConfig
from shared.config import read_toml
from shared.errors import ConfigError, TransportError

log = logging.getLogger(__name__)

EXIT_CONFIG = 2

M = TypeVar("M", bound=BaseModel)


@click.command(name="chat")
@click.option("--gateway", default=None, help="Gateway id (overrides the file).")
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="edge.toml: state_dir, rules, [actuate] and [agent]. Default: built-in defaults.",
)  # fmt: skip
@click.option("--nats", "nats_url", default=None, help="Leaf nats-server URL (overrides the file).")
@click.option("--offline", is_flag=True, help="Do not connect to the leaf at all.")
@click.option(
    "--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="GGUF model file (overrides [agent] model_path).",
)  # fmt: skip
@click.option("--session", "session_id", default=None, help="Continue a stored session.")
def chat(
    gateway: str | None,
    config_path: Path | None,
    nats_url: str | None,
    offline: bool,
    model: Path | None,
    session_id: str | None,
) -> None:
    """Talk to the gateway's local agent (streamed answers, tools over local state)."""
    try:
        edge, agent = load_configs(config_path, gateway=gateway, nats_url=nats_url, model=model)
    except ConfigError as exc:
        click.echo(f"config error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    asyncio.run(run_chat(edge, agent, session_id=session_id, offline=offline))


def load_configs(
    path: Path | None, *, gateway: str | None, nats_url: str | None, model: Path | None
) -> tuple[EdgeConfig, AgentConfig]:
    """The edge's config and the agent's `[agent]` table of the same file."""
    data = read_toml(path) if path is not None else {}
    table: dict[str, Any] = dict(data.pop("agent", {}))
    if gateway is not None:
        data["gateway"] = gateway
    if nats_url is not None:
        data["nats_url"] = nats_url
    if model is not None:
        table["model_path"] = model
    return _validated(EdgeConfig, data, path), _validated(AgentConfig, table, path, "agent.")


def _validated(cls: type[M], data: dict[str, Any], path: Path | None, prefix: str = "") -> M:
    try:
        return cls(**data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = prefix + ".".join(str(part) for part in first["loc"])
        raise ConfigError(first["msg"], file=str(path) if path else None, field=field) from exc


async def run_chat(
    edge: EdgeConfig,
    agent: AgentConfig,
    *,
    session_id: str | None = None,
    offline: bool = False,
    stdin: IO[str] | None = None,
) -> None:
    """The chat itself (`stdin` defaults to the terminal's)."""
    from edge.ingest import links  # the leaf connection, only when asked for

    nc: Client | None = None
    if not offline:
        try:
            nc = await links.nats_client(edge.nats_url, edge.gateway)
        except TransportError as exc:
            click.echo(f"No leaf at {edge.nats_url} ({exc}): answering from local data; "
                       "actuation is off and events stay on this gateway.")  # fmt: skip
    try:
        async with await LocalAgent.open(edge, agent, nc=nc) as local:
            if local.backend.notice:
                click.echo(local.backend.notice)
            session = await local.session(session_id)
            handoff = find_handoff(nc, edge.gateway)
            loop = ChatLoop(
                session, stdin=stdin or sys.stdin, echo=_echo, handoff=handoff,
                hub=lambda: _hub_state(nc),
            )  # fmt: skip
            try:
                await loop.run()
            finally:
                if handoff is not None:
                    await handoff.aclose()
    finally:
        if nc is not None:
            await links.close_nats(nc)


def _hub_state(nc: Client | None) -> str:
    return "linked" if nc is not None and nc.is_connected else "offline"


def _echo(text: str) -> None:
    click.echo(text, nl=False)
