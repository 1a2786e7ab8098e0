"""`baton handoff SESSION --to cloud|edge`: move an agent session, and show how it went.

    $ baton handoff s-4f2a --to cloud
    handoff s-4f2a: edge:gw1 (epoch 12) -> cloud
      quiesce      0.0 ms
      request      0.1 ms
      snapshot     2.4 ms
      prepare      1.2 ms
      flip         1.0 ms
      commit       1.7 ms
    owner cloud:r1, epoch 15, 6.4 ms

The command reads the session's lease from the hub KV (`leases`), sends the order to the
owner's inbox (`handoff.<gw>.request` for a gateway, `cloud.session.<replica>.request`
for a cloud replica) and prints the owner's report. Any NATS URL that reaches the hub
works, a gateway's leaf included. A failure is one `error:` line and exit code 2.
"""

from __future__ import annotations

import asyncio
from typing import Final

import click
import nats
import nats.errors
from nats.aio.client import Client

from shared import subjects
from shared.compat import timeout
from shared.config import redact_url
from shared.creds.permissions import gateway_inbox_prefix
from shared.errors import BatonError, DecodeError, TransportError
from shared.session.control import HandoffOrder, HandoffReport
from shared.session.lease import Lease, LeaseStore
from shared.session.runner import SessionSettings, hub_js

DEFAULT_URL: Final = "nats://127.0.0.1:4222"
CONNECT_TIMEOUT_S: Final = 5.0
_SETTINGS = SessionSettings()
# The owner may wait for a running turn (then cut it), and loads the snapshot remotely.
ORDER_TIMEOUT_S: Final = _SETTINGS.turn_wait_s * 2 + _SETTINGS.prepare_timeout_s + 5.0


class HandoffFailed(BatonError):
    pass


@click.command(name="handoff")
@click.argument("session")
@click.option(
    "--to", "to", type=click.Choice(["cloud", "edge"]), required=True, help="Where it goes."
)
@click.option(
    "--nats",
    "url",
    default=DEFAULT_URL,
    show_default=True,
    envvar="BATON_NATS_URL",
    show_envvar=True,
    help="Any NATS server that reaches the hub (the hub, or a gateway's leaf).",
)
@click.option(
    "--gateway", default=None, envvar="BATON_GATEWAY", show_envvar=True,
    help="With --nats on a gateway's leaf under `baton creds` credentials "
    "(nats://edge:PASSWORD@127.0.0.1:4222): that gateway's id, so the hub's replies "
    "come back on the only inbox it may hear (_INBOX_<GW>).",
)  # fmt: skip
@click.option("--reason", default="cli", show_default=True, help="Recorded in the session.")
@click.option(
    "--timeout", "wait_s", type=float, default=ORDER_TIMEOUT_S, show_default=True,
    help="Seconds to wait for the owner's report.",
)  # fmt: skip
def handoff(
    session: str, to: str, url: str, gateway: str | None, reason: str, wait_s: float
) -> None:
    """Move agent session SESSION to the cloud or back to its gateway.

    Prints each step of the handoff with its latency, then the new owner and
    its epoch (the fencing token every later side effect carries).
    """
    try:
        report, before = asyncio.run(_handoff(session, to, url, gateway, reason, wait_s))
    except BatonError as exc:
        raise click.exceptions.Exit(_fail(str(exc))) from exc
    _print(report, before, to)
    if not report.ok:
        where = f" at {report.step}" if report.step else ""
        raise click.exceptions.Exit(_fail(f"handoff of {session} failed{where}: {report.error}"))


def _fail(message: str) -> int:
    click.echo(f"error: {message}", err=True)
    return 2


async def _handoff(
    session: str, to: str, url: str, gateway: str | None, reason: str, wait_s: float
) -> tuple[HandoffReport, Lease]:
    errors: list[Exception] = []

    async def keep(exc: Exception) -> None:
        errors.append(exc)  # reported once, below, instead of nats-py's traceback per try

    try:
        async with timeout(CONNECT_TIMEOUT_S):
            # Two tries, not nats-py's default of retrying the first connect forever.
            nc = await nats.connect(
                url, allow_reconnect=False, max_reconnect_attempts=1,
                reconnect_time_wait=0.1, connect_timeout=CONNECT_TIMEOUT_S, error_cb=keep,
                inbox_prefix=gateway_inbox_prefix(gateway) if gateway else "_INBOX",
            )  # fmt: skip
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        why = errors[-1] if errors else exc
        raise TransportError(f"cannot reach NATS at {redact_url(url)}: {why}") from exc
    try:
        lease = await _lease(nc, session)
        order = HandoffOrder.model_validate({"session": session, "to": to, "reason": reason})
        try:
            msg = await nc.request(lease.owner.inbox("request"), order.encode(), timeout=wait_s)
            return HandoffReport.decode(msg.data), lease
        except nats.errors.NoRespondersError as exc:
            raise HandoffFailed(f"{lease.value.owner} (the owner) is not listening") from exc
        except (nats.errors.Error, DecodeError) as exc:
            raise HandoffFailed(f"no report from {lease.value.owner}: {exc!r}") from exc
    finally:
        await nc.close()


async def _lease(nc: Client, session: str) -> Lease:
    if not subjects.is_valid_id(session):
        raise HandoffFailed(f"{session!r} is not a session id")
    js = hub_js(nc)
    try:
        kv = await js.key_value(subjects.LEASES_BUCKET)
    except nats.errors.Error as exc:
        raise TransportError(f"the hub's leases bucket is not reachable: {exc!r}") from exc
    lease = await LeaseStore(js, kv).get(session)
    if lease is None:
        raise HandoffFailed(
            f"session {session} has no owner (no lease in KV {subjects.LEASES_BUCKET})"
        )
    return lease


def _print(report: HandoffReport, before: Lease, to: str) -> None:
    click.echo(f"handoff {report.session}: {before.value.owner} (epoch {before.epoch}) -> {to}")
    for step in report.steps:
        click.echo(f"  {step.name:<10} {step.ms:7.1f} ms")
    if report.ok and not report.steps:
        click.echo(f"already on the {to}: owner {report.owner}, epoch {report.epoch}")
    elif report.ok:
        click.echo(f"owner {report.owner}, epoch {report.epoch}, {report.latency_ms:.1f} ms")
