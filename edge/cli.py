"""`baton edge`: run the gateway daemon, or check its config file.

    baton edge run --config edge.toml [--gateway GW] [--nats URL]
    baton edge check-config edge.toml

Signals while running: SIGTERM / SIGINT drain and exit 0; SIGHUP reloads the rules from
the config file (a bad file is refused, logged, and the old rules stay).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edge.config import EdgeConfig
from shared.config import load_config
from shared.errors import ConfigError

if TYPE_CHECKING:
    from edge.daemon import EdgeDaemon

log = logging.getLogger(__name__)

EXIT_CONFIG = 2
EXIT_FAILED = 1


@click.group(name="edge")
def edge_group() -> None:
    """The gateway daemon: ingest, reflex rules and models, actuation, uplink."""


@edge_group.command(name="run")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="edge.toml (see edge/edge.example.toml). Default: built-in defaults only.",
)
@click.option("--gateway", default=None, help="Gateway id (overrides the file).")
@click.option("--nats", "nats_url", default=None, help="Leaf nats-server URL (overrides the file).")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def run(
    config_path: Path | None,
    gateway: str | None,
    nats_url: str | None,
    log_level: str,
    log_format: str,
) -> None:
    """Run the edge daemon until SIGTERM.

    Logs one "ready" line with the time since the process started. Metrics and health
    are served on [http] host:port (/metrics, /healthz).
    """
    from edge.ops.logs import configure

    config = _load_or_exit(config_path, gateway=gateway, nats_url=nats_url)
    configure(log_level, log_format)
    sys.exit(asyncio.run(_serve(config, config_path)))


@edge_group.command(name="check-config")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def check_config(file: Path) -> None:
    """Validate FILE and print the effective config (file + BATON_EDGE_* environment).

    A problem prints one line, `file: field: reason`, and exits 2.
    """
    config = _load_or_exit(file)
    from edge.errors import RuleError
    from edge.reflex.engine import RuleSet

    try:
        RuleSet.build(config.rules)
    except RuleError as exc:
        click.echo(f"{file}: rules: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    click.echo(json.dumps(_redacted(config), indent=2))


def _load_or_exit(path: Path | None, **overrides: str | None) -> EdgeConfig:
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return load_config(EdgeConfig, path, **given)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_CONFIG)


def _redacted(config: EdgeConfig) -> dict[str, Any]:
    doc = config.model_dump(mode="json")
    if doc["ingest"].get("mqtt_password"):
        doc["ingest"]["mqtt_password"] = "***"
    return doc


async def _serve(config: EdgeConfig, config_path: Path | None) -> int:
    from edge.daemon import EdgeDaemon
    from edge.ops import systemd

    loop = asyncio.get_running_loop()
    stop, hup = asyncio.Event(), asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, hup.set)
    try:
        async with EdgeDaemon(config, config_path=config_path) as daemon:
            # What start-up made (modules, models, config) lives as long as the process:
            # out of the collector's sight, a full collection walks only what came after,
            # and the rare ~16 ms pause in the reflex path's p99 goes away.
            gc.freeze()
            systemd.notify(f"READY=1\nSTATUS=serving gateway {config.gateway}")
            code = await _until_stopped(daemon, stop, hup)
            systemd.notify("STOPPING=1")
            return code
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)


async def _until_stopped(daemon: EdgeDaemon, stop: asyncio.Event, hup: asyncio.Event) -> int:
    """0 after SIGTERM/SIGINT; 1 if a background task of the daemon failed."""
    from edge.ops import systemd

    failed = asyncio.create_task(daemon.wait(), name="edge-watch")
    stopped = asyncio.create_task(stop.wait(), name="edge-stop")
    reloads = asyncio.create_task(_reload_on_hup(daemon, hup), name="edge-sighup")
    tasks = {failed, stopped, reloads}
    interval = systemd.watchdog_interval_s()
    if interval is not None:
        tasks.add(asyncio.create_task(systemd.keep_alive(interval), name="edge-watchdog"))
    try:
        await asyncio.wait({failed, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if failed.done() and not failed.cancelled() and failed.exception() is not None:
        log.error("edge daemon failed", exc_info=failed.exception())
        return EXIT_FAILED
    log.info("stopping: draining ingest, audit and uplink")
    return 0


async def _reload_on_hup(daemon: EdgeDaemon, hup: asyncio.Event) -> None:
    while True:
        await hup.wait()
        hup.clear()
        try:
            await daemon.reload_rules()  # a bad file is refused and logged in there
        except Exception:
            log.exception("rules reload failed; the old rules stay")
