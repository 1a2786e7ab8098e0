"""`baton cloud`: run one orchestrator replica, or check its config file.

    baton cloud run --config cloud.toml [--nats URL] [--port P]
    baton cloud check-config cloud.toml

`run` prints one line with the API URL once the replica is ready. SIGTERM / SIGINT drain
(finish the batch in hand, ack it, close) and exit 0; a fatal error in a background loop
exits 1, so a supervisor restarts the replica while the others carry its work.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cloud.config import CloudConfig, load_cloud_config
from shared.errors import ConfigError

if TYPE_CHECKING:
    from cloud.orchestrator import Orchestrator

log = logging.getLogger(__name__)

EXIT_FAILED = 1
EXIT_CONFIG = 2


@click.group(name="cloud")
def cloud_group() -> None:
    """The cloud orchestrator: fleet ingest, twins, planner, HTTP API."""


@cloud_group.command(name="run")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="cloud.toml (see cloud/cloud.example.toml). Default: built-in defaults only.",
)
@click.option("--nats", "nats_url", default=None, help="Hub nats-server URL (overrides the file).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="API port; 0 = any free port."
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def run(config_path: Path | None, nats_url: str | None, port: int | None, log_level: str) -> None:
    """Run one replica until SIGTERM; several replicas against one hub split the work."""
    config = _load_or_exit(config_path, nats_url=nats_url, port=port)
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        force=True,
    )
    sys.exit(asyncio.run(_serve(config)))


@cloud_group.command(name="check-config")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def check_config(file: Path) -> None:
    """Validate FILE and print the effective config (file + BATON_CLOUD_* environment)."""
    config = _load_or_exit(file)
    click.echo(json.dumps(config.model_dump(mode="json"), indent=2))


def _load_or_exit(
    path: Path | None, *, nats_url: str | None = None, port: int | None = None
) -> CloudConfig:
    try:
        config = load_cloud_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_CONFIG)
    update: dict[str, object] = {}
    if nats_url is not None:
        update["nats_url"] = nats_url
    if port is not None:
        update["http"] = config.http.model_copy(update={"port": port})
    return config.model_copy(update=update)


async def _serve(config: CloudConfig) -> int:
    from cloud.orchestrator import Orchestrator

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Orchestrator(config) as orch:
            click.echo(f"baton cloud: replica {orch.replica} API at {orch.url}")
            sys.stdout.flush()
            ended = await _until_stopped(orch, stop)
            log.info("stopping: draining ingest, then closing the API and the hub connection")
        return ended
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _until_stopped(orch: Orchestrator, stop: asyncio.Event) -> int:
    """0 after SIGTERM/SIGINT; 1 when a background loop of the replica failed."""
    closed = asyncio.create_task(orch.wait_closed(), name="cloud-watch")
    stopped = asyncio.create_task(stop.wait(), name="cloud-stop")
    try:
        await asyncio.wait({closed, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (closed, stopped):
            task.cancel()
        await asyncio.gather(closed, stopped, return_exceptions=True)
    return EXIT_FAILED if orch.failed is not None else 0
