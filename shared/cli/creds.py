"""`baton creds`: identities for gateways, devices and the orchestrator, and the server
authorization that enforces them.

Secrets go to files with mode 0600; the commands print paths and public keys, never a
secret (so a terminal log or a CI transcript leaks nothing).
"""

from __future__ import annotations

from pathlib import Path

import click

from shared.creds import CredStore, hub_authorization, leaf_credentials, write_atomic
from shared.creds.files import PUBLIC_MODE

DEFAULT_DIR = "baton-creds"
_DIR_HELP = "The credentials store (a directory, mode 0700)."


def _store(ctx: click.Context) -> CredStore:
    path: Path = ctx.obj["dir"]
    return CredStore(path)


@click.group(name="creds")
@click.option(
    "--dir",
    "store_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    envvar="BATON_CREDS_DIR",
    show_envvar=True,
    help=_DIR_HELP,
)
@click.pass_context
def creds_group(ctx: click.Context, store_dir: Path) -> None:
    """Identities and permissions for a fleet: who may publish and hear what.

    \b
    Who authenticates how:
      orchestrator  NKEY (Ed25519 key pair; the hub keeps only the public key)
      gateway       NKEY for its leaf node link to the hub (TLS), plus a local
                    password for the edge daemon on its own leaf
      device        username = device id, random password; MQTT has no
                    challenge-response, so the leaf keeps a bcrypt hash

    \b
    What each may do (enforced by nats-server, over NATS and MQTT alike):
      device        publish baton/d/DEV/r, /ack, /status; subscribe baton/d/DEV/cmd
      gateway       send fleet.GW.> to the hub, read its own DOWNLINK consumer
                    edge-GW and the model store, receive replies on _INBOX_GW.>;
                    for session handoff: hear handoff.GW.> and rtc.*.edge, ask
                    cloud.session.> and rtc.*.cloud, CAS the hub's leases
                    bucket, append to and read SESSIONS (never purge it)
      orchestrator  the hub's JetStream API, fleet.>, downlink.>, sessions,
                    cloud.session.> and each gateway's _INBOX_GW.>

    \b
    A fleet in five commands:
      baton creds init baton-creds
      baton creds add-gateway gw1
      baton creds add-device pump-7 --gateway gw1      # then flash devices/pump-7.password
      baton creds server-config hub -o auth.conf       # every hub node includes it
      baton creds server-config leaf gw1 -o gw1.creds  # SECRET: install.sh --creds gw1.creds

    After adding or removing an identity, render again and reload the servers
    (`nats-server --signal reload`, or `systemctl reload baton-nats` on a gateway).
    """
    ctx.ensure_object(dict)
    ctx.obj["dir"] = store_dir


@creds_group.command(name="init")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def init(ctx: click.Context, directory: Path | None) -> None:
    """Create a store in DIRECTORY (default: --dir) with an orchestrator identity.

    Running it on an existing store changes nothing. Keep the store off the
    gateways: it holds every secret of the fleet.
    """
    path = directory if directory is not None else ctx.obj["dir"]
    store = CredStore.init(path)
    click.echo(f"store      {store.path}")
    click.echo(f"orchestrator seed  {store.orchestrator_seed_path()}  (mount into the cloud)")


@creds_group.command(name="add-gateway")
@click.argument("gateway")
@click.option("--rotate", is_flag=True, help="Replace the secrets of an existing gateway.")
@click.pass_context
def add_gateway(ctx: click.Context, gateway: str, rotate: bool) -> None:
    """Create GATEWAY's hub NKEY and its edge daemon's leaf password."""
    store = _store(ctx)
    folder = store.add_gateway(gateway, rotate=rotate)
    click.echo(f"gateway {gateway}  public key {store.gateway(gateway).public}")
    click.echo(f"secrets in {folder}")
    click.echo(f"next: baton creds server-config leaf {gateway} -o {gateway}.creds")


@creds_group.command(name="add-device")
@click.argument("device")
@click.option("--gateway", required=True, help="The gateway whose leaf the device talks to.")
@click.option("--rotate", is_flag=True, help="Replace the password of an existing device.")
@click.pass_context
def add_device(ctx: click.Context, device: str, gateway: str, rotate: bool) -> None:
    """Create DEVICE's password (its MQTT username is DEVICE).

    The password file is what the firmware needs; the leaf only ever sees its
    bcrypt hash, in the gateway's credentials file.
    """
    path = _store(ctx).add_device(device, gateway, rotate=rotate)
    click.echo(f"device {device} on gateway {gateway}: password in {path}")
    click.echo(f"next: baton creds server-config leaf {gateway} -o {gateway}.creds, reinstall it")


@creds_group.command(name="remove-device")
@click.argument("device")
@click.pass_context
def remove_device(ctx: click.Context, device: str) -> None:
    """Revoke DEVICE: render its gateway's credentials again to lock it out."""
    store = _store(ctx)
    gateway = store.device(device).gateway
    store.remove_device(device)
    click.echo(f"removed device {device}; next: baton creds server-config leaf {gateway} ...")


@creds_group.command(name="remove-gateway")
@click.argument("gateway")
@click.option("--with-devices", is_flag=True, help="Also remove the gateway's devices.")
@click.pass_context
def remove_gateway(ctx: click.Context, gateway: str, with_devices: bool) -> None:
    """Revoke GATEWAY: render the hub authorization again to lock it out."""
    removed = _store(ctx).remove_gateway(gateway, with_devices=with_devices)
    suffix = f" and devices {', '.join(removed)}" if removed else ""
    click.echo(f"removed gateway {gateway}{suffix}; next: baton creds server-config hub ...")


@creds_group.command(name="list")
@click.pass_context
def list_identities(ctx: click.Context) -> None:
    """Every identity with its public key or gateway (no secrets)."""
    store = _store(ctx)
    for name, public in sorted(store.orchestrators().items()):
        click.echo(f"orchestrator  {name:<24} {public}")
    for name, gw in sorted(store.gateways().items()):
        click.echo(f"gateway       {name:<24} {gw.public}")
    for name, dev in sorted(store.devices().items()):
        click.echo(f"device        {name:<24} gateway {dev.gateway}")


@creds_group.group(name="server-config")
def server_config() -> None:
    """Render the nats-server authorization for the hub or for one gateway's leaf."""


@server_config.command(name="hub")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here (mode 0644: public keys only). Default: standard output.",
)
@click.pass_context
def server_config_hub(ctx: click.Context, output: Path | None) -> None:
    """The hub's `authorization {}`: the orchestrator's and every gateway's NKEY.

    deploy/nats/hub-common.conf includes it as `auth.conf`; copy it to every node.
    """
    text = hub_authorization(_store(ctx))
    if output is None:
        click.echo(text, nl=False)
        return
    write_atomic(output, text, mode=PUBLIC_MODE)
    click.echo(f"wrote {output}", err=True)


@server_config.command(name="leaf")
@click.argument("gateway")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Write here, mode 0600 (it holds secrets, so never standard output).",
)
@click.pass_context
def server_config_leaf(ctx: click.Context, gateway: str, output: Path) -> None:
    """GATEWAY's credentials file: hub NKEY seed, edge password, device logins.

    Give it to the installer (`install.sh --creds FILE`), which installs it as
    /etc/baton/creds.conf for the leaf nats-server. It is a secret: copy it over
    ssh, never by chat or e-mail, and delete your copy once installed.
    """
    write_atomic(output, leaf_credentials(_store(ctx), gateway))
    click.echo(f"wrote {output} (mode 0600)", err=True)
