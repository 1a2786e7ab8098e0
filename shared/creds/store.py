"""The credentials store: a directory with an index of identities and one file per secret.

    DIR/                         0700
      creds.json                 index: names, public keys, bcrypt hashes, device → gateway
      orchestrator/<name>.nk     NKEY seed of an orchestrator (mount it into the cloud)
      gateways/<gw>/hub.nk       NKEY seed of the gateway's leaf node link to the hub
      gateways/<gw>/edge.password  the edge daemon's login on its own leaf
      devices/<dev>.password     a device's MQTT/NATS password (flash it into the firmware)

Every file is 0600. Device ids are unique across the fleet: the MQTT topic
`baton/d/<dev>/...` does not name the gateway. Mutations hold an flock on `DIR/.lock`,
so two `baton creds` runs never lose each other's changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import subjects
from shared.creds import keys
from shared.creds.errors import CredsError, IdentityExists, StoreNotFound, UnknownIdentity
from shared.creds.files import make_private_dir, read_secret, write_atomic

INDEX = "creds.json"
FORMAT = 1
DEFAULT_ORCHESTRATOR = "orchestrator"
_LOCK = ".lock"


@dataclass(frozen=True, slots=True)
class Gateway:
    name: str
    public: str
    """The NKEY the gateway's leaf node link signs with."""


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    gateway: str
    password_hash: str


class CredStore:
    """A credentials directory; `CredStore.init(path)` makes one, `CredStore(path)` opens it."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not (self.path / INDEX).is_file():
            raise StoreNotFound(f"no credentials store at {self.path} (run `baton creds init`)")

    @classmethod
    def init(cls, path: Path | str) -> CredStore:
        """Create a store with one orchestrator identity; an existing store is kept as is."""
        root = Path(path)
        make_private_dir(root)
        if not (root / INDEX).exists():
            _write_index(
                root, {"format": FORMAT, "orchestrators": {}, "gateways": {}, "devices": {}}
            )
        store = cls(root)
        if DEFAULT_ORCHESTRATOR not in store.orchestrators():
            store.add_orchestrator(DEFAULT_ORCHESTRATOR)
        return store

    # -- reading -------------------------------------------------------------------------

    def orchestrators(self) -> dict[str, str]:
        """Orchestrator name → public NKEY."""
        return {n: str(rec["public"]) for n, rec in self._index()["orchestrators"].items()}

    def gateways(self) -> dict[str, Gateway]:
        return {n: Gateway(n, str(rec["public"])) for n, rec in self._index()["gateways"].items()}

    def gateway(self, name: str) -> Gateway:
        found = self.gateways().get(name)
        if found is None:
            raise UnknownIdentity(f"no gateway {name!r} in {self.path}")
        return found

    def devices(self, *, gateway: str | None = None) -> dict[str, Device]:
        found = {
            n: Device(n, str(rec["gateway"]), str(rec["hash"]))
            for n, rec in self._index()["devices"].items()
        }
        if gateway is None:
            return found
        return {n: d for n, d in found.items() if d.gateway == gateway}

    def device(self, name: str) -> Device:
        found = self.devices().get(name)
        if found is None:
            raise UnknownIdentity(f"no device {name!r} in {self.path}")
        return found

    # -- secrets (read only when rendering a config or connecting) -----------------------

    def orchestrator_seed_path(self, name: str = DEFAULT_ORCHESTRATOR) -> Path:
        return self.path / "orchestrator" / f"{name}.nk"

    def gateway_seed_path(self, gateway: str) -> Path:
        return self.path / "gateways" / gateway / "hub.nk"

    def edge_password_path(self, gateway: str) -> Path:
        return self.path / "gateways" / gateway / "edge.password"

    def device_password_path(self, device: str) -> Path:
        return self.path / "devices" / f"{device}.password"

    def orchestrator_seed(self, name: str = DEFAULT_ORCHESTRATOR) -> str:
        if name not in self.orchestrators():
            raise UnknownIdentity(f"no orchestrator {name!r} in {self.path}")
        return read_secret(self.orchestrator_seed_path(name))

    def gateway_seed(self, gateway: str) -> str:
        self.gateway(gateway)
        return read_secret(self.gateway_seed_path(gateway))

    def edge_password(self, gateway: str) -> str:
        self.gateway(gateway)
        return read_secret(self.edge_password_path(gateway))

    def device_password(self, device: str) -> str:
        self.device(device)
        return read_secret(self.device_password_path(device))

    # -- changing ------------------------------------------------------------------------

    def add_orchestrator(self, name: str, *, rotate: bool = False) -> Path:
        """Create (or with `rotate`, replace) an orchestrator NKEY; returns the seed file."""
        _check_id(name, "orchestrator name")
        with self._locked() as index:
            _check_new(index["orchestrators"], name, "orchestrator", rotate)
            key = keys.new_user_key()
            write_atomic(self.orchestrator_seed_path(name), key.seed + "\n")
            index["orchestrators"][name] = {"public": key.public}
        return self.orchestrator_seed_path(name)

    def add_gateway(self, name: str, *, rotate: bool = False) -> Path:
        """Create (or replace) a gateway's hub NKEY and edge password; returns its directory."""
        _check_id(name, "gateway id")
        with self._locked() as index:
            _check_new(index["gateways"], name, "gateway", rotate)
            key = keys.new_user_key()
            write_atomic(self.gateway_seed_path(name), key.seed + "\n")
            write_atomic(self.edge_password_path(name), keys.new_password() + "\n")
            index["gateways"][name] = {"public": key.public}
        return self.gateway_seed_path(name).parent

    def add_device(self, name: str, gateway: str, *, rotate: bool = False) -> Path:
        """Create (or replace) a device's password; returns the password file."""
        _check_id(name, "device id")
        with self._locked() as index:
            if gateway not in index["gateways"]:
                raise UnknownIdentity(f"no gateway {gateway!r} in {self.path}")
            _check_new(index["devices"], name, "device", rotate)
            password = keys.new_password()
            write_atomic(self.device_password_path(name), password + "\n")
            index["devices"][name] = {"gateway": gateway, "hash": keys.hash_password(password)}
        return self.device_password_path(name)

    def remove_device(self, name: str) -> None:
        with self._locked() as index:
            if index["devices"].pop(name, None) is None:
                raise UnknownIdentity(f"no device {name!r} in {self.path}")
            self.device_password_path(name).unlink(missing_ok=True)

    def remove_gateway(self, name: str, *, with_devices: bool = False) -> list[str]:
        """Remove a gateway (and, if asked, its devices); returns the devices removed."""
        with self._locked() as index:
            if name not in index["gateways"]:
                raise UnknownIdentity(f"no gateway {name!r} in {self.path}")
            devices = sorted(d for d, rec in index["devices"].items() if rec["gateway"] == name)
            if devices and not with_devices:
                raise CredsError(
                    f"gateway {name!r} still has devices {', '.join(devices)}; "
                    "remove them first or pass --with-devices"
                )
            for device in devices:
                del index["devices"][device]
                self.device_password_path(device).unlink(missing_ok=True)
            del index["gateways"][name]
            for path in (self.gateway_seed_path(name), self.edge_password_path(name)):
                path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # only when empty: never delete a stray file
                self.gateway_seed_path(name).parent.rmdir()
        return devices

    # -- internals -----------------------------------------------------------------------

    def _index(self) -> dict[str, Any]:
        try:
            data = json.loads((self.path / INDEX).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CredsError(f"cannot read {self.path / INDEX}: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CredsError(f"{self.path / INDEX} is not a format-{FORMAT} baton store")
        return data

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The index, under an exclusive lock; written back when the block succeeds."""
        fd = os.open(self.path / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            index = self._index()
            yield index
            _write_index(self.path, index)
        finally:
            os.close(fd)  # closing releases the lock


def _write_index(root: Path, index: dict[str, Any]) -> None:
    write_atomic(root / INDEX, json.dumps(index, indent=2, sort_keys=True) + "\n")


def _check_id(value: str, what: str) -> None:
    if not subjects.is_valid_id(value):
        raise CredsError(f"invalid {what} {value!r}: use 1-64 letters, digits, '_' or '-'")


def _check_new(table: dict[str, Any], name: str, what: str, rotate: bool) -> None:
    if name in table and not rotate:
        raise IdentityExists(f"{what} {name!r} exists; pass --rotate to replace its secret")
