"""How much `OnnxScorer.score` adds to a bare onnxruntime run of the same model.

Both sides score the same window with a session of the same settings; the bare side is
the plain `session.run(None, {name: array})` a user would write, fed an array that is
already float32. Rounds of each alternate and the best round of each is kept, so a noisy
neighbour on a shared core slows both sides alike instead of deciding the ratio.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.models.scorer import OnnxScorer, open_session


@dataclass(frozen=True, slots=True)
class Timing:
    score_us: float  # OnnxScorer.score of a deque of row tuples, as the reflex engine keeps
    score_array_us: float  # OnnxScorer.score of a float32 numpy window
    bare_us: float  # InferenceSession.run of a ready float32 array

    @property
    def ratio(self) -> float:
        return self.score_us / self.bare_us


def _best_round(
    calls: dict[str, Callable[[], object]], rounds: int, per_round: int
) -> dict[str, float]:
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            for _ in range(per_round):
                call()
            best[name] = min(best[name], (time.perf_counter() - started) / per_round)
    return {name: seconds * 1e6 for name, seconds in best.items()}


def measure(model: Path | None = None, *, rounds: int = 40, per_round: int = 500) -> Timing:
    import numpy as np

    scorer = OnnxScorer.load(model)
    rows = deque([(1.2 + 0.01 * i, 50.0, 8.0) for i in range(scorer.window)], scorer.window)
    array = np.asarray(rows, dtype=np.float32)
    batch = array[None]
    session = open_session(scorer.path)
    name = session.get_inputs()[0].name
    calls: dict[str, Callable[[], object]] = {
        "score": lambda: scorer.score(rows),
        "score_array": lambda: scorer.score(array),
        "bare": lambda: session.run(None, {name: batch}),
    }
    _best_round(calls, 2, per_round)  # warm-up: first runs allocate and page in
    best = _best_round(calls, rounds, per_round)
    return Timing(best["score"], best["score_array"], best["bare"])
