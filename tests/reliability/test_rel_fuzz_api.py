"""Issue 10 item 10, the HTTP API: schemathesis against the orchestrator's own OpenAPI
document, over real HTTP to a running replica (hub, ingest, planner, read model).

Requests are generated from `/openapi.json`, valid ones and deliberately invalid ones
(schemathesis' negative mode), for every operation but the live event stream (an SSE
response never ends; tests/cloud/test_api.py covers it). Each answer must be a success
or a refusal with the typed body `{"error", "reason"}` (cloud/api/errors.py), never a
5xx other than a typed 503.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relkit_figures import Figures

from cloud.config import CloudConfig
from cloud.orchestrator import Orchestrator
from shared import codec, subjects
from shared.messages import Reading, now_ms
from shared.natsrun import NatsServer

# A dev dependency (pyproject `dev` extra); without it the API is still fuzzed by
# tests/cloud/test_api.py's fixed cases only.
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
GenerationMode = schemathesis.GenerationMode

SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
GW, DEVICE = "gw1", "fan1"
# The event stream never ends; everything else answers and closes.
STREAMING = ("/api/events",)
REQUEST_TIMEOUT_S = 10.0
# Refusals made by Starlette/FastAPI themselves (HTTPException), not by cloud/api/errors.py.


@pytest.fixture
async def replica(hub: NatsServer, tmp_path: Path) -> AsyncIterator[Orchestrator]:
    """A replica with its planner on and one known device, so routes reach real data."""
    config = CloudConfig.model_validate(
        {
            "nats_url": hub.client_url,
            "replica": "a",
            "state_dir": tmp_path / "cloud",
            "http": {"port": 0},
            "planner": {"enabled": True},
            "reconcile_interval_s": 0.2,
        }
    )
    orch = Orchestrator(config)
    await orch.start()
    nc = await nats.connect(hub.client_url)
    try:
        reading = Reading(device=DEVICE, seq=1, ts_ms=now_ms(), metrics={"temp_c": 21.0})
        await nc.jetstream().publish(
            subjects.fleet(GW, "r", DEVICE),
            codec.encode(reading),
            headers={"Nats-Msg-Id": "seed", "Baton-Gateway": GW},
        )
        await orch.wait_for(lambda: orch.readmodel.twin(GW, DEVICE) is not None)
        yield orch
    finally:
        await nc.close()
        await orch.aclose()
    assert orch.failed is None


def _typed(response: Any) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), str) and "reason" in body


def _fuzz(url: str, examples: int, outcomes: Counter[str]) -> None:
    """Runs in a worker thread: schemathesis' client is synchronous."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    every = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    operations = [op for op in every if op.path not in STREAMING]
    cases = st.one_of(
        [
            op.as_strategy(generation_mode=mode)  # type: ignore[arg-type]
            for op in operations
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
    )

    @settings(max_examples=examples, deadline=None, suppress_health_check=SLOW_OK, database=None)
    @given(case=cases)
    def one(case: Any) -> None:
        response = case.call(base_url=url, timeout=REQUEST_TIMEOUT_S)
        status = response.status_code
        where = f"{case.method} {case.formatted_path} -> {status} {response.text[:300]}"
        assert status < 500 or (status == 503 and _typed(response)), where
        # Every refusal, Starlette's own included, carries {error, reason}.
        assert status < 400 or _typed(response), where
        outcomes[f"{status // 100}xx"] += 1
        outcomes["typed_refusals"] += status >= 400 and _typed(response)

    one()
    outcomes["operations"] = len(operations)


async def test_api_answers_every_generated_request_without_a_server_error(
    replica: Orchestrator, figures: Figures
) -> None:
    examples = figures.scale(ci=150, full=3000, name="examples")
    outcomes: Counter[str] = Counter()
    await asyncio.to_thread(_fuzz, replica.url, examples, outcomes)
    figures.record(
        operations=outcomes["operations"],
        requests=outcomes["2xx"] + outcomes["4xx"] + outcomes["5xx"],
        ok=outcomes["2xx"],
        refused=outcomes["4xx"] + outcomes["5xx"],
        typed_refusals=outcomes["typed_refusals"],
        untyped_refusals=0,
        server_errors=0,
    )
    assert outcomes["4xx"] > 0, "no invalid request was generated"


async def test_every_refusal_gets_the_typed_error_body(
    replica: Orchestrator, figures: Figures
) -> None:
    async with httpx.AsyncClient(base_url=replica.url) as http:
        answers = [
            await http.get(f"/api/devices/{GW}/{DEVICE}/nope"),
            await http.delete("/api/fleet"),
            await http.post("/api/plans", content=b"\x00" * 5, headers=JSON),
        ]
    figures.record(requests=len(answers), typed=sum(_typed(r) for r in answers))
    assert all(400 <= r.status_code < 500 for r in answers)
    assert all(_typed(r) for r in answers), [(r.status_code, r.text) for r in answers]


async def test_refused_api_requests_are_counted_in_metrics(
    replica: Orchestrator, figures: Figures
) -> None:
    async with httpx.AsyncClient(base_url=replica.url) as http:
        before = (await http.get("/metrics")).text
        refused = await http.put(
            f"/api/devices/{GW}/{DEVICE}/desired", content=b"{not json", headers=JSON
        )
        after = (await http.get("/metrics")).text
    assert refused.status_code == 422
    moved = [
        line
        for line in after.splitlines()
        if line not in before and not line.startswith("#") and _about_requests(line)
    ]
    figures.record(refused=1, counter_lines_moved=len(moved))
    assert moved, "no counter moved for a refused request"


JSON = {"content-type": "application/json"}


def _about_requests(line: str) -> bool:
    name = line.split("{")[0].split(" ")[0]
    return any(word in name for word in ("http", "api", "request"))
