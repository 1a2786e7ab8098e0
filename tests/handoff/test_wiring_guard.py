"""The actuation guard hears a session's lease epochs: a late local command is fenced."""

from __future__ import annotations

import pytest

from edge.actuate import ActuationGuard, GuardPolicy
from edge.errors import GuardRefused
from edge.handoff.attach import fencing_hook
from shared.messages import Command, now_ms


def command(epoch: int) -> Command:
    return Command(device="fan1", action="fan", params={"on": True}, session="s1",
                   epoch=epoch, issued_ms=now_ms(), deadline_ms=now_ms() + 60_000)  # fmt: skip


def guard() -> ActuationGuard:
    return ActuationGuard(GuardPolicy(frozenset({"fan"})), {"s1": 3})


def test_observe_raises_the_fence_without_a_command() -> None:
    g = guard()
    assert g.check(command(3), now_ms()) is False  # the edge owner, epoch 3: allowed
    assert g.observe("s1", 5) is True  # the cloud took the session at epoch 5
    with pytest.raises(GuardRefused) as refused:
        g.check(command(3), now_ms())  # the edge's late command of epoch 3
    assert refused.value.reason == "stale_epoch"
    assert g.check(command(5), now_ms()) is False  # the new owner's is fine
    assert (g.observe("s1", 4), g.observe("s1", 5), g.epoch("s1")) == (False, False, 5)


def test_the_hook_persists_only_a_raised_fence() -> None:
    g = guard()
    persisted: list[tuple[str, int]] = []
    hook = fencing_hook(g, lambda session, epoch: persisted.append((session, epoch)))
    for epoch in (2, 3, 7, 7, 6, 9):
        hook("s1", epoch)
    assert persisted == [("s1", 7), ("s1", 9)]
    assert g.epoch("s1") == 9
