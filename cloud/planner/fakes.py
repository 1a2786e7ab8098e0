"""In-memory stand-ins for the planner's seams, for tests and demos without an edge or a model.

FakeEdge          a gateway that hears its devices' commands on the hub and acks them
                  on FLEET like the edge's forwarder would; per command it can ack,
                  refuse or stay silent (a step whose edge never answers)
ScriptedBackend   an `LlmBackend` that replies with scripted texts
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Literal

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from shared import codec, subjects
from shared.messages import Command, CommandAck

Answer = Literal["ack", "refuse", "silent"]
Policy = Callable[[Command], Answer]


def ack_all(command: Command) -> Answer:
    return "ack"


class FakeEdge:
    """Answers the commands of gateway `gw`; `commands` queues every one it hears."""

    def __init__(self, js: JetStreamContext, gw: str, policy: Policy = ack_all) -> None:
        self._js = js
        self._gw = gw
        self.policy = policy
        self.commands: asyncio.Queue[Command] = asyncio.Queue()
        self.heard: list[Command] = []
        self._sub: JetStreamContext.PushSubscription | None = None

    async def __aenter__(self) -> FakeEdge:
        self._sub = await self._js.subscribe(
            subjects.downlink(self._gw, "cmd", "*"),
            stream=subjects.DOWNLINK_STREAM,
            cb=self._on,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()

    async def _on(self, msg: Msg) -> None:
        command = codec.decode(msg.data, Command)
        self.heard.append(command)
        await self.commands.put(command)
        answer = self.policy(command)
        if answer != "silent":
            await self.ack(command, ok=answer == "ack")

    async def ack(self, command: Command, *, ok: bool = True, reason: str | None = None) -> None:
        """Publish the device's ack the way the edge forwards it (FLEET, deduped)."""
        ack = CommandAck(
            cmd_id=command.cmd_id,
            device=command.device,
            ok=ok,
            reason=reason if ok else reason or "refused by the fake edge",
            epoch=command.epoch,
        )
        await self._js.publish(
            subjects.fleet(self._gw, "ack", command.device),
            codec.encode(ack),
            headers={"Nats-Msg-Id": f"{self._gw}/{command.device}/ack/{command.cmd_id}"},
        )


class ScriptedBackend:
    """An `LlmBackend` replying with `replies` in turn (the last one repeats)."""

    def __init__(self, replies: Sequence[str]) -> None:
        self._replies = list(replies)
        self.calls: list[tuple[list[dict[str, str]], dict[str, Any]]] = []
        self.closed = False

    async def generate(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> str:
        self.calls.append((messages, schema))
        return self._replies[min(len(self.calls), len(self._replies)) - 1]

    async def aclose(self) -> None:
        self.closed = True
