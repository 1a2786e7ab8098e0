"""`baton sim`: run simulated sensor firmware against an MQTT broker.

    baton sim run --broker mqtt://127.0.0.1:1883 --scenario pump-overheat --devices 3
    baton sim list-scenarios

A bad scenario or an unreachable broker is one line on stderr and exit code 2. Ctrl-C
(or SIGTERM) stops taking readings, drains, and still prints the summary.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import click

from firmware_sim.broker import BrokerUrl
from firmware_sim.scenario import list_scenarios
from firmware_sim.simulator import Simulator
from firmware_sim.summary import SimSummary
from shared.errors import BatonError

PROGRESS_EVERY_S: Final = 5.0


class Failed(click.ClickException):
    """One line and exit code 2, the project's code for bad input or an unreachable peer."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@click.group(name="sim")
def sim_group() -> None:
    """Simulated sensor firmware over MQTT: physics, faults, scenarios, load mode."""


@sim_group.command("list-scenarios")
def list_command() -> None:
    """The scenarios shipped with baton (use the name with --scenario)."""
    for name, description in list_scenarios():
        click.echo(f"{name:<16} {description}")


@sim_group.command("run")
@click.option(
    "--broker",
    default="mqtt://127.0.0.1:1883",
    show_default=True,
    help="MQTT broker URL: mqtt://[user:pass@]HOST[:PORT].",
)
@click.option(
    "--scenario",
    "-s",
    default="pump-overheat",
    show_default=True,
    help="A scenario file, or the name of a shipped one (see list-scenarios).",
)
@click.option(
    "--devices", "-n", type=click.IntRange(min=1), help="Devices (default: the scenario's)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same readings.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    help="Wall seconds to run; 0 runs until Ctrl-C (default: the scenario's).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True, max=1000),
    help="Readings per second per device (default: the scenario's).",
)
@click.option("--qos", type=click.IntRange(0, 1), help="QoS of readings (default: the scenario's).")
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    help="Simulated seconds per wall second (default: the scenario's).",
)
@click.option(
    "--connections",
    type=click.IntRange(min=1),
    help="Share this many MQTT connections among the devices (load mode; no per-device will).",
)
@click.option(
    "--creds",
    type=click.Path(file_okay=False, path_type=Path),
    help="A `baton creds` store: each device logs in as itself with its own password.",
)
@click.option("--id-prefix", default="", help="Prepended to every device id.")
@click.option(
    "--seq-start", type=click.IntRange(min=0), help="First sequence number (default: boot-based)."
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the summary counts to this file as JSON.",
)
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="A readings/s line on stderr every few seconds.",
)
def run_command(
    json_path: Path | None, progress: bool, broker: str, creds: Path | None, **options: Any
) -> None:
    """Run simulated devices against a broker and print a summary line at the end."""
    try:
        url = BrokerUrl.parse(broker)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--broker") from exc
    if creds is not None:
        options["logins"] = _store_logins(creds)
    try:
        summary = asyncio.run(_run(url, progress, options))
    except BatonError as exc:
        raise Failed(str(exc)) from exc
    click.echo(summary.line())
    if json_path is not None:
        json_path.write_text(summary.to_json() + "\n", encoding="utf-8")


def _store_logins(path: Path) -> Callable[[str], tuple[str, str]]:
    """Device id -> (user, password) from a credentials store (`baton creds add-device`)."""
    from shared.creds import CredStore  # only when asked: bcrypt and friends load lazily

    try:
        store = CredStore(path)
    except BatonError as exc:
        raise Failed(str(exc)) from exc
    return lambda device: (device, store.device_password(device))


async def _run(broker: BrokerUrl, progress: bool, options: dict[str, Any]) -> SimSummary:
    sim = Simulator(broker, **options)
    _stop_on_signals(sim)  # before connecting: Ctrl-C while connecting stops cleanly too
    async with sim:
        reporter = asyncio.create_task(_report(sim), name="sim-progress") if progress else None
        try:
            return await sim.run()
        finally:
            if reporter is not None:
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)


def _stop_on_signals(sim: Simulator) -> None:
    loop = asyncio.get_running_loop()

    def stop(signum: int) -> None:
        # A second Ctrl-C gets Python's default: an immediate KeyboardInterrupt.
        loop.remove_signal_handler(signum)
        click.echo("sim: stopping (Ctrl-C again to abort)", err=True)
        sim.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)


async def _report(sim: Simulator) -> None:
    """Every few seconds: the rate over the last interval and the running totals."""
    sent = 0
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)  # a periodic report, not a wait for state
        now = sim.summary()
        rate, sent = (now.sent - sent) / PROGRESS_EVERY_S, now.sent
        acked = f", acked {now.acked}" if now.qos else ""
        print(
            f"sim: {now.elapsed_s:.0f} s, {rate:,.0f} readings/s, sent {now.sent}{acked}, "
            f"dropped {now.dropped_buffer}, reconnects {now.reconnects}",
            file=sys.stderr,
            flush=True,
        )
