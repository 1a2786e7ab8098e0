"""`baton chat`: a session with the gateway's local agent, in the terminal.

    baton chat --gateway GW [--config edge.toml] [--nats URL] [--model PATH] [--session ID]

When the gateway's edge daemon hosts sessions (it does once the hub answers, unless
`[handoff] enabled = false`), the chat is its client: the session lives in the daemon,
which answers the questions with its agent and moves it on `/handoff cloud|edge`; when
the chat exits the session stays there, and the API or `baton handoff` can still move
it. `--session ID` continues a session the daemon has (or had: it reopens it from the
gateway's store).

Without such a daemon (none runs, it waits for the hub, `--offline`) the chat runs the
session itself, beside the daemon: it reads the gateway's SQLite (rollups, decisions,
twin, its own sessions), and through the leaf (`--nats`, default the config's) it hears
live readings, actuates through the edge's guard and appends every event to the hub's
audit stream; `/handoff` then hosts the session in this process until it exits. Without
a model file (`--model` or `[agent] model_path`) it says so and answers from rules and
data. Exit codes: 0, 2 for a bad config.
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

from edge.agent.chat import ChatLoop, Conversation, LocalConversation, find_handoff, handoff_module
from edge.agent.local import LocalAgent
from edge.config import EdgeConfig
from shared.agent import AgentConfig
from shared.config import read_toml
from shared.errors import BatonError, ConfigError, TransportError

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
@click.option(
    "--offline", is_flag=True,
    help="Do not connect to the leaf at all (nor to the daemon): the session runs here.",
)  # fmt: skip
@click.option(
    "--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="GGUF model file (overrides [agent] model_path) for a session this process "
    "runs; the daemon's sessions use the daemon's.",
)  # fmt: skip
@click.option(
    "--session", "session_id", default=None,
    help="Continue this session: the daemon's, or one stored on the gateway.",
)  # fmt: skip
def chat(
    gateway: str | None,
    config_path: Path | None,
    nats_url: str | None,
    offline: bool,
    model: Path | None,
    session_id: str | None,
) -> None:
    """Talk to the gateway's local agent (streamed answers, tools over local state).

    When the gateway's edge daemon hosts sessions, the session lives there (answered by
    the daemon's model) and stays there when the chat exits: the API and `baton handoff`
    can still move it. Otherwise (no daemon, it waits for the hub, --offline) this
    process runs the session itself. /handoff cloud|edge moves it, /status shows who
    owns it and its epoch, /quit leaves.
    """
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
        hosted = await _in_daemon(nc, edge, session_id) if nc is not None else None
        if hosted is not None:
            click.echo(f"Session {hosted.id} lives in the edge daemon of {edge.gateway}; "
                       "it stays there when you leave.")  # fmt: skip
            await _converse(hosted, nc, stdin)
            return
        async with await LocalAgent.open(edge, agent, nc=nc) as local:
            if local.backend.notice:
                click.echo(local.backend.notice)
            session = await local.session(session_id)
            here = LocalConversation(session, find_handoff(nc, edge.gateway))
            await _converse(here, nc, stdin)
    finally:
        if nc is not None:
            await links.close_nats(nc)


async def _in_daemon(nc: Client, edge: EdgeConfig, session_id: str | None) -> Any | None:
    """The session in the gateway's daemon (`edge.handoff.DaemonSession`), or None (a
    one-line notice says why) when no daemon hosts sessions for this gateway."""
    opener = getattr(handoff_module(), "daemon_session", None)
    if opener is None:
        return None
    try:
        hosted = await opener(nc, edge.gateway, session_id, settings=edge.handoff.settings())
    except BatonError as exc:
        click.echo(f"This chat runs the session itself: {exc}.")
        return None
    if hosted.notice:
        click.echo(hosted.notice)
    return hosted


async def _converse(conversation: Conversation, nc: Client | None, stdin: IO[str] | None) -> None:
    loop = ChatLoop(conversation, stdin=stdin or sys.stdin, echo=_echo,
                    hub=lambda: _hub_state(nc))  # fmt: skip
    try:
        await loop.run()
    finally:
        await conversation.aclose()


def _hub_state(nc: Client | None) -> str:
    return "linked" if nc is not None and nc.is_connected else "offline"


def _echo(text: str) -> None:
    click.echo(text, nl=False)
