"""`baton demo`: the whole system on one machine, with its dashboard.

    baton demo [--duration S] [--no-browser] [--summary FILE] [--dir DIR] [--port P]

Exit codes: 0 the demo ran and nothing was lost; 1 a component failed or a reading was
lost (the summary says which); 2 the demo could not start (a missing piece, a busy port:
one line on stderr); 130 interrupted while starting.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click

from shared.demo.errors import DemoError
from shared.demo.runner import DemoOptions, run_demo, write_summary
from shared.demo.summary import DemoSummary
from shared.demo.workdir import DEFAULT_DIR
from shared.errors import BatonError

EXIT_CANNOT_START = 2


@click.command(name="demo")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds to run, then stop and sum up. Default: until Ctrl-C.",
)
@click.option("--no-browser", is_flag=True, help="Do not open the dashboard in a browser.")
@click.option(
    "--summary",
    "summary_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the end-of-run summary to FILE as JSON.",
)
@click.option(
    "--dir",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="All state (NATS stores, SQLite, logs) goes here; delete it when done.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Dashboard and API port; 0 = any free port.",
)
def demo(
    duration: float | None,
    no_browser: bool,
    summary_path: Path | None,
    state_dir: Path,
    port: int,
) -> None:
    """Run hub, gateway, cloud, sensors and dashboard on this machine, then sum up.

    \b
    What runs: a hub and a gateway leaf nats-server, the cloud orchestrator (API and
    dashboard), an edge daemon with rules and the shipped ONNX model, and simulated
    sensors: a pump that overheats, a bearing that wears out, environment sensors on a
    flaky radio, a few bad payloads. The hub is stopped for a few seconds halfway (a
    flaky uplink), and an operator session is handed gateway -> cloud -> gateway.

    \b
    Ctrl-C (or --duration) stops everything in order, draining on the way, and
    prints what happened: readings, reflex actions and their latency, quarantined
    payloads, what reached the cloud, plans, handoffs, and whether anything was lost.
    """
    options = DemoOptions(
        duration_s=duration,
        browser=not no_browser,
        summary_path=summary_path,
        dir=state_dir,
        port=port,
    )
    try:
        summary, code = asyncio.run(_main(options))
    except BatonError as exc:
        click.echo(f"baton demo: {exc}", err=True)
        sys.exit(EXIT_CANNOT_START)
    for line in summary.lines():
        click.echo(line)
    if summary_path is not None:
        write_summary(summary, summary_path)
        click.echo(f"summary written to {summary_path}")
    sys.exit(code)


async def _main(options: DemoOptions) -> tuple[DemoSummary, int]:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        # A second Ctrl-C gets Python's default: stop waiting for the drain.
        loop.remove_signal_handler(signum)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await run_demo(options, sys.stdout, stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


__all__ = ["DemoError", "demo"]
