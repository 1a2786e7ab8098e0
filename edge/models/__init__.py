"""ONNX anomaly models for the reflex engine.

    from edge.models import OnnxScorer
    scorer = OnnxScorer.load()              # the shipped bearing model, or load(path)
    score = scorer.score(last_rows)         # rows oldest first, columns scorer.metrics
    alarm = score > scorer.threshold

Importing this package is cheap: numpy and onnxruntime load only when a model does,
so a rules-only daemon never pays for them. Training lives in `edge.models.pipeline`
(`baton models train-anomaly`), which needs numpy and onnx.
"""

from __future__ import annotations

from edge.models.card import ModelCard, card_path
from edge.models.scorer import DEFAULT_MODEL, OnnxScorer

__all__ = ["DEFAULT_MODEL", "ModelCard", "OnnxScorer", "card_path"]
