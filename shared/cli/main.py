"""The `baton` command. Subcommands come from the `baton.commands` entry-point group.

Each package (shared, edge, cloud, firmware_sim) registers its own groups there; the
root loads a subcommand only when it is invoked, so `baton edge run` on a gateway never
imports the cloud and starts fast.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import EntryPoint, entry_points

import click

from shared.errors import BatonError

GROUP = "baton.commands"


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


class LazyGroup(click.Group):
    """A click group whose subcommands are entry points, imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_entry_points()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        ep = _entry_points().get(cmd_name)
        if ep is None:
            return None
        try:
            command = ep.load()
        except ImportError as exc:
            # A gateway installed without an extra still gets a clear line, not a traceback.
            return _unavailable(cmd_name, exc)
        if not isinstance(command, click.Command):
            raise click.ClickException(f"entry point {ep.value} is not a click command")
        return command


def _unavailable(name: str, exc: ImportError) -> click.Command:
    @click.command(
        name=name, help=f"(unavailable: {exc})", context_settings={"ignore_unknown_options": True}
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise click.ClickException(
            f"`baton {name}` needs a package that is not installed ({exc}). "
            "Install the matching extra, e.g. pip install 'baton[cloud]'."
        )

    return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="baton")
def cli(verbose: int) -> None:
    """baton: edge-to-cloud IoT agents over NATS.

    \b
    A gateway (Pi, Jetson) reacts to sensors in milliseconds with rules and small
    models; a cloud orchestrator plans over the fleet; agent sessions move between
    them without losing a message or acting twice.

    \b
    Start here:
      baton doctor            what is installed and usable on this machine
      baton nats up           a local hub + gateway leaf nats-server, with their URLs
      baton sim run --help    simulated sensor firmware over MQTT

    Run `baton COMMAND --help` for the details of each command.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


def main() -> None:
    """Console-script entry point: BatonErrors become one clear line and exit code 2."""
    try:
        # standalone_mode=False returns what `ctx.exit(n)` asked for instead of exiting.
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BatonError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    if isinstance(code, int):
        sys.exit(code)


if __name__ == "__main__":
    main()
