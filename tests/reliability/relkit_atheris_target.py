"""The atheris (libFuzzer) target of test_rel_fuzz_atheris.py, run as its own process:
`python relkit_atheris_target.py CORPUS_DIR -max_total_time=S ...`.

Each input picks a decoder with its first byte and feeds it the rest: `codec.decode`
(any kind, or an expected one), `codec.peek`, the cloud's FLEET fact parser, the edge
downlink dispatcher. Only their typed refusals are expected; any other exception is a
crash, which libFuzzer reports with the input that caused it (and a non-zero exit).
"""

from __future__ import annotations

import asyncio
import sys

import atheris

with atheris.instrument_imports(include=["shared", "cloud.ingest", "edge.uplink"]):
    from cloud.errors import Rejected
    from cloud.ingest.facts import parse
    from edge.uplink.dispatch import Dispatcher, Refused
    from shared import codec
    from shared.errors import DecodeError
    from shared.messages import (
        Command,
        CommandAck,
        DesiredState,
        Message,
        ModelUpdate,
        Reading,
        RulesUpdate,
    )

EXPECT: list[type[Message] | None] = [None, Reading, CommandAck, Command, DesiredState]
FLEET = [
    "fleet.gw1.r.dev-a",
    "fleet.gw1.twin.dev-a",
    "fleet.gw1.status.dev-a",
    "fleet.gw1.ack.dev-a",
    "fleet.gw1.ev.gw1",
    "fleet.gw1.dec.dev-a",
    "fleet.gw2.r.x.y",
]
DOWNLINK = [
    "downlink.gw1.cmd.dev-a",
    "downlink.gw1.desired.dev-a",
    "downlink.gw1.rules",
    "downlink.gw1.model",
    "downlink.gw1.model.x",
    "downlink.gw2.cmd.dev-a",
]


class AcceptAll:
    async def on_command(self, cmd: Command) -> None:
        pass

    async def on_desired(self, desired: DesiredState) -> None:
        pass

    async def on_rules(self, update: RulesUpdate) -> None:
        pass

    async def on_model(self, update: ModelUpdate, data: bytes) -> None:
        pass


async def _no_model(update: ModelUpdate) -> bytes:
    return b""


LOOP = asyncio.new_event_loop()
DISPATCHER = Dispatcher("gw1", AcceptAll(), _no_model, fetch_timeout_s=1.0)


def one_input(data: bytes) -> None:
    if not data:
        return
    which, rest = data[0], data[1:]
    try:
        if which % 4 == 0:
            codec.decode(rest, EXPECT[which // 4 % len(EXPECT)])
        elif which % 4 == 1:
            codec.peek(rest, (Reading, CommandAck)[which // 4 % 2])
        elif which % 4 == 2:
            parse(FLEET[which // 4 % len(FLEET)], {}, rest, now_ms=1_800_000_000_000)
        else:
            LOOP.run_until_complete(DISPATCHER.dispatch(DOWNLINK[which // 4 % len(DOWNLINK)], rest))
    except (DecodeError, Rejected, Refused):
        pass


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
