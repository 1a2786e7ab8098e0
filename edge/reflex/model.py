"""ONNX anomaly models in the reflex path: a sliding window per device, scored per reading.

`Scorer` is the seam: `edge.models.OnnxScorer` satisfies it in production, a plain class
in the tests. `load_scorer` imports `edge.models` (and so onnxruntime and numpy) only when
a `[[models]]` entry exists, which keeps a rules-only gateway small.
"""

from __future__ import annotations

import importlib
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from edge.config import ModelConfig
from edge.errors import ModelError
from edge.reflex.trigger import Firing, Limit, TriggerState, trip

log = logging.getLogger(__name__)


class Scorer(Protocol):
    """What the reflex engine needs from an anomaly model."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def metrics(self) -> tuple[str, ...]: ...
    @property
    def window(self) -> int: ...
    @property
    def threshold(self) -> float: ...

    def score(self, window: Sequence[Sequence[float]]) -> float:
        """Higher is more anomalous; rows are the last `window` readings, cols `metrics`."""
        ...


def load_scorer(path: Path | None) -> Scorer:
    """Load an ONNX model (None: the one shipped with baton); `ModelError` if it fails."""
    try:
        # Here and not at the top: `edge.models` pulls in numpy and onnxruntime, which
        # a rules-only gateway must never pay for.
        models = importlib.import_module("edge.models")
        scorer: Scorer = models.OnnxScorer.load(path)
    except ImportError as exc:
        raise ModelError(f"the ONNX model runtime is not available: {exc}") from exc
    except ModelError:
        raise
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot load model {path or '(default)'}: {exc}") from exc
    return scorer


class _DeviceWindow:
    __slots__ = ("rows", "trigger")

    def __init__(self, size: int) -> None:
        self.rows: deque[tuple[float, ...]] = deque(maxlen=size)
        self.trigger = TriggerState()


class ModelRule:
    """One `[[models]]` entry: fires its action when a device's window scores too high."""

    def __init__(self, config: ModelConfig, scorer: Scorer) -> None:
        self.config = config
        self.scorer = scorer
        self.name = config.name
        self.threshold = config.threshold if config.threshold is not None else scorer.threshold
        self._limit = Limit(above=self.threshold)
        self._metrics = tuple(scorer.metrics)
        self._windows: dict[str, _DeviceWindow] = {}

    def applies(self, device: str, dclass: str | None) -> bool:
        cfg = self.config
        if cfg.device is not None and cfg.device != device:
            return False
        return cfg.dclass is None or cfg.dclass == dclass

    def observe(self, device: str, metrics: Mapping[str, float], now_s: float) -> Firing | None:
        try:
            row = tuple(metrics[m] for m in self._metrics)
        except KeyError:
            return None  # a reading without every feature says nothing to this model
        state = self._windows.get(device)
        if state is None:
            state = self._windows[device] = _DeviceWindow(self.scorer.window)
        state.rows.append(row)
        if len(state.rows) < self.scorer.window:
            return None
        score = float(self.scorer.score(state.rows))
        if (
            trip(state.trigger, self._limit, score, now_s, cooldown_s=self.config.cooldown_s)
            is None
        ):
            return None
        return self._firing(device, metrics, score)

    def _firing(self, device: str, metrics: Mapping[str, float], score: float) -> Firing:
        cfg = self.config
        inputs = {m: metrics[m] for m in self._metrics}
        return Firing(
            source="model",
            name=cfg.name,
            version=str(self.scorer.version),
            device=device,
            action=cfg.action,
            params=cfg.params,
            deadline_ms=cfg.deadline_ms,
            inputs=inputs,
            score=score,
            threshold=self.threshold,
        )
