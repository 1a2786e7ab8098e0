"""onnx: one window scored the way the reflex engine does it (`OnnxScorer.score` of the
deque of row tuples it keeps per device) vs a bare `InferenceSession.run` of the same
model with the same session options, fed a ready float32 array.

Each call is timed on its own, in alternating blocks, for the median and p99; the note
adds `baton models bench`'s best-round figure (`edge.models.bench.measure`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from shared.bench.context import Context
from shared.bench.row import TIMES, Goal, Row
from shared.bench.runner import Skip
from shared.bench.stats import Summary

name = "onnx"
title = "OnnxScorer.score per window vs a bare onnxruntime InferenceSession.run"

GOALS = (Goal("ratio", "<=", 1.2),)


def _block(call: Callable[[], object], count: int) -> list[float]:
    out = []
    clock = time.perf_counter_ns
    for _ in range(count):
        started = clock()
        call()
        out.append((clock() - started) / 1000)
    return out


def _calls() -> dict[str, Callable[[], object]]:
    try:
        import numpy as np

        from edge.models.scorer import OnnxScorer, open_session
    except ImportError as exc:
        raise Skip(f"onnxruntime or numpy is not installed ({exc})") from exc
    scorer = OnnxScorer.load()
    rows = deque([(1.2 + 0.01 * i, 50.0, 8.0) for i in range(scorer.window)], scorer.window)
    batch = np.asarray(rows, dtype=np.float32)[None]
    session = open_session(scorer.path)
    input_name = session.get_inputs()[0].name
    return {
        "baton": lambda: scorer.score(rows),
        "bare": lambda: session.run(None, {input_name: batch}),
    }


async def run(ctx: Context) -> list[Row]:
    calls = _calls()
    rounds, block = ctx.pick(quick=4, full=40), ctx.pick(quick=100, full=500)
    ctx.say(f"{rounds} rounds of {block} calls per side, alternating")
    for call in calls.values():  # warm-up: the first runs allocate and page in
        _block(call, block)
    samples: dict[str, list[float]] = {"baton": [], "bare": []}
    for i in range(rounds):
        for arm in ("baton", "bare") if i % 2 == 0 else ("bare", "baton"):
            samples[arm] += _block(calls[arm], block)
    baton, bare = Summary.of(samples["baton"]), Summary.of(samples["bare"])
    ctx.latency("OnnxScorer.score", [v / 1000 for v in samples["baton"]])
    ctx.latency("bare InferenceSession.run", [v / 1000 for v in samples["bare"]])
    return [
        Row(
            "ONNX inference per window",
            "µs",
            baton.median,
            baton.p99,
            reference="bare InferenceSession.run",
            ref_median=bare.median,
            ref_p99=bare.p99,
            goals=GOALS,
            samples=baton.count,
            note=_best_round(ctx),
        )
    ]


def _best_round(ctx: Context) -> str:
    from edge.models.bench import measure

    timing = measure(rounds=ctx.pick(quick=3, full=20), per_round=ctx.pick(quick=100, full=500))
    return (
        f"best-round means (baton models bench): score {timing.score_us:.1f} µs, "
        f"bare {timing.bare_us:.1f} µs, {timing.ratio:.2f}{TIMES}"
    )
