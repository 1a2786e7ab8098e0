"""Decode, check and hand one downlink message to the daemon's `DownlinkHandler`.

    downlink.<gw>.cmd.<device>        Command        → on_command
    downlink.<gw>.desired.<device>    DesiredState   → on_desired
    downlink.<gw>.rules               RulesUpdate    → on_rules   (sha256 of the rules)
    downlink.<gw>.model[.<name>]      ModelUpdate    → on_model   (sha256 of the object)

Anything that fails a check, or that the handler refuses with an `EdgeError` (RuleError,
ModelError, GuardRefused), raises `Refused`: the caller acks it, counts it and reports
it, and the old rules or model stay in force. Any other exception is the handler's bug
or a transient failure (the hub went away mid-download) and is worth a redelivery.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from nats.js.errors import DigestMismatchError, NotFoundError

from edge.errors import EdgeError
from shared import codec
from shared.compat import timeout
from shared.errors import DecodeError
from shared.messages import Command, DesiredState, Message, ModelUpdate, RulesUpdate

M = TypeVar("M", bound=Message)

KINDS = ("cmd", "desired", "rules", "model")


class DownlinkHandler(Protocol):
    """What the daemon does with what the hub sends. Raise an `EdgeError` to refuse."""

    async def on_command(self, cmd: Command) -> None: ...

    async def on_desired(self, desired: DesiredState) -> None: ...

    async def on_rules(self, update: RulesUpdate) -> None:
        """Swap the rule set in, or raise `RuleError` to keep the old one."""

    async def on_model(self, update: ModelUpdate, data: bytes) -> None:
        """Load the model (`data` matches `update.sha256`), or raise `ModelError`."""


class Refused(Exception):
    """A downlink message that will not be applied; redelivering it cannot help."""

    def __init__(self, reason: str, *, version: str | None = None) -> None:
        self.reason = reason
        self.version = version
        super().__init__(reason)


# Fetches the object named by a ModelUpdate from the hub's `models` Object Store.
ModelFetcher = Callable[[ModelUpdate], Awaitable[bytes]]


class Dispatcher:
    def __init__(
        self,
        gateway: str,
        handler: DownlinkHandler,
        fetch_model: ModelFetcher,
        *,
        fetch_timeout_s: float,
    ) -> None:
        self._gateway = gateway
        self._handler = handler
        self._fetch_model = fetch_model
        self._fetch_timeout_s = fetch_timeout_s

    async def dispatch(self, subject: str, data: bytes) -> Message:
        """Apply one message; returns it decoded. Raises `Refused`, or the handler's error."""
        kind, device = _parse(subject, self._gateway)
        return await self._apply(kind, device, data)

    async def _apply(self, kind: str, device: str | None, data: bytes) -> Message:
        if kind == "cmd":
            cmd = self._decode(data, Command, device)
            await _refusable(self._handler.on_command(cmd), cmd.cmd_id)
            return cmd
        if kind == "desired":
            desired = self._decode(data, DesiredState, device)
            await _refusable(self._handler.on_desired(desired), str(desired.version))
            return desired
        if kind == "rules":
            rules = self._decode(data, RulesUpdate, None)
            if not rules.digest_ok:
                raise Refused("sha256 does not match the rules", version=rules.version)
            await _refusable(self._handler.on_rules(rules), rules.version)
            return rules
        update = self._decode(data, ModelUpdate, None)
        blob = await self._download(update)
        await _refusable(self._handler.on_model(update, blob), update.version)
        return update

    def _decode(self, data: bytes, cls: type[M], device: str | None) -> M:
        try:
            message = codec.decode(data, cls)
        except DecodeError as exc:
            raise Refused(f"{exc.reason}: {exc.detail}") from exc
        gw = getattr(message, "gw", None)
        if gw is not None and gw != self._gateway:
            raise Refused(f"addressed to gateway {gw!r}", version=version_of(message))
        if device is not None and getattr(message, "device", device) != device:
            raise Refused("device does not match the subject", version=version_of(message))
        return message

    async def _download(self, update: ModelUpdate) -> bytes:
        try:
            async with timeout(self._fetch_timeout_s):
                data = await self._fetch_model(update)
        except NotFoundError as exc:  # also ObjectNotFoundError, ObjectDeletedError
            raise Refused(
                f"model object {update.object_name!r} not found", version=update.version
            ) from exc
        except DigestMismatchError as exc:
            raise Refused("model object corrupt in the store", version=update.version) from exc
        except asyncio.TimeoutError:
            # The hub is slow or gone mid-download: transient, worth a redelivery.
            raise TimeoutError(
                f"model {update.object_name!r} not fetched in {self._fetch_timeout_s:g}s"
            ) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != update.sha256:
            raise Refused(
                f"model sha256 {digest[:12]}… does not match the update", version=update.version
            )
        return data


async def _refusable(apply: Awaitable[None], version: str) -> None:
    """Await a handler call; an `EdgeError` refusal keeps the update's version."""
    try:
        await apply
    except EdgeError as exc:
        raise Refused(str(exc), version=version) from exc


def _parse(subject: str, gateway: str) -> tuple[str, str | None]:
    """(kind, device or None) of `downlink.<gw>.<kind>[.<device>]`."""
    parts = subject.split(".")
    if len(parts) not in (3, 4) or parts[0] != "downlink" or parts[1] != gateway:
        raise Refused(f"unexpected subject {subject!r}")
    kind = parts[2]
    if kind not in KINDS:
        raise Refused(f"unknown downlink kind {kind!r}")
    device = parts[3] if len(parts) == 4 else None
    if kind in ("cmd", "desired") and device is None:
        raise Refused(f"{kind} subject without a device")
    return kind, device if kind in ("cmd", "desired") else None


def version_of(message: Message | None) -> str | None:
    """The version a report names: update version, desired version, or command id."""
    if isinstance(message, (RulesUpdate, ModelUpdate)):
        return message.version
    if isinstance(message, DesiredState):
        return str(message.version)
    if isinstance(message, Command):
        return message.cmd_id
    return None
