"""`baton handoff SESSION --to cloud|edge`: each step with its latency, the new owner and
epoch; a clear error line and exit code 2 when it cannot move the session."""

from __future__ import annotations

import asyncio

from click.testing import CliRunner, Result
from handoffkit import GW, WAIT_S, Sides, start_session

from shared.cli.handoff import handoff
from shared.compat import timeout


async def run_cli(*args: str) -> Result:
    # The command runs its own event loop (asyncio.run), so it gets a thread of its own.
    return await asyncio.to_thread(CliRunner().invoke, handoff, list(args))


async def test_moves_a_session_and_prints_each_step_and_the_new_epoch(hub_sides: Sides) -> None:
    edge = await hub_sides.edge()
    await hub_sides.cloud()
    await start_session(edge)
    before = edge.runners["s1"].epoch

    result = await run_cli("s1", "--to", "cloud", "--nats", hub_sides.cloud_url)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"handoff s1: edge:{GW} (epoch {before}) -> cloud"
    assert [line.split()[0] for line in lines[1:-1]] == [
        "quiesce", "request", "snapshot", "prepare", "flip", "commit",
    ]  # fmt: skip
    async with timeout(WAIT_S):
        lease = await edge.board.wait(
            "s1", lambda lease: lease is not None and lease.value.owner == "cloud:r1"
        )
    assert lease is not None and lines[-1].startswith(f"owner cloud:r1, epoch {lease.epoch}, ")

    back = await run_cli("s1", "--to", "edge", "--nats", hub_sides.edge_url)
    assert back.exit_code == 0, back.output
    assert f"owner edge:{GW}, epoch " in back.output


async def test_a_session_already_there_is_not_moved(hub_sides: Sides) -> None:
    edge = await hub_sides.edge()
    await start_session(edge)
    result = await run_cli("s1", "--to", "edge", "--nats", hub_sides.edge_url)
    assert result.exit_code == 0, result.output
    assert "already on the edge" in result.output


async def test_failures_are_one_error_line_and_exit_2(hub_sides: Sides) -> None:
    edge = await hub_sides.edge()
    await start_session(edge)

    unknown = await run_cli("nope", "--to", "cloud", "--nats", hub_sides.edge_url)
    assert (unknown.exit_code, unknown.output.strip()) == (
        2, "error: session nope has no owner (no lease in KV leases)",
    )  # fmt: skip
    nobody = await run_cli("s1", "--to", "cloud", "--nats", hub_sides.edge_url)  # no cloud
    assert nobody.exit_code == 2
    assert nobody.output.startswith("handoff s1: ")
    assert "error: handoff of s1 failed at prepare: no cloud is listening" in nobody.output
    offline = await run_cli("s1", "--to", "cloud", "--nats", "nats://127.0.0.1:1")
    assert offline.exit_code == 2 and offline.output.startswith("error: cannot reach NATS")
