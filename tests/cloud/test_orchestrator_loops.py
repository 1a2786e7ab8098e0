"""A replica whose background loop ends by itself fails visibly: logged, `failed` set,
`wait_closed()` returns (the CLI exits non-zero) and /healthz says 503."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from cloudkit import WAIT_S, ConfigFactory

from cloud.orchestrator import Orchestrator
from cloud.twins.reconcile import Reconciler
from shared.compat import timeout


async def test_a_loop_that_ends_by_itself_fails_the_replica_visibly(
    cloud_config: ConfigFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop_reconciling = asyncio.Event()

    async def reconcile_until_told(self: Reconciler) -> None:
        await stop_reconciling.wait()  # then return, as a loop that gave up would

    monkeypatch.setattr(Reconciler, "run", reconcile_until_told)
    orch = Orchestrator(cloud_config())
    await orch.start()
    try:
        stop_reconciling.set()
        async with timeout(WAIT_S):
            await orch.wait_closed()
        assert orch.failed is not None and "loop reconcile" in repr(orch.failed)
        assert any(r.levelno == logging.CRITICAL for r in caplog.records)
        async with httpx.AsyncClient(base_url=orch.url) as http:
            health = await http.get("/healthz")
        assert health.status_code == 503 and health.json()["loops"] is False
    finally:
        await orch.aclose()
