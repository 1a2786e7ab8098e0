"""OnnxScorer against the shipped model and small models trained here, with real onnxruntime."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ModelError
from edge.models import DEFAULT_MODEL, OnnxScorer, card_path
from edge.models.card import file_sha256
from edge.models.data import default_source
from edge.models.features import sliding_windows


@pytest.fixture(scope="module")
def shipped() -> OnnxScorer:
    return OnnxScorer.load()


def copy_model(tmp_path: Path, source: Path = DEFAULT_MODEL) -> Path:
    model = tmp_path / "m.onnx"
    model.write_bytes(source.read_bytes())
    card_path(model).write_text(card_path(source).read_text())
    return model


def test_shipped_model_matches_its_card(shipped: OnnxScorer) -> None:
    card = json.loads(card_path(DEFAULT_MODEL).read_text())
    assert card["sha256"] == file_sha256(DEFAULT_MODEL)
    assert shipped.name == card["name"] == "bearing"
    assert shipped.version == card["version"]
    assert shipped.metrics == tuple(card["inputs"]["metrics"])
    assert shipped.window == card["inputs"]["window"]
    assert shipped.threshold == card["threshold"] > 0
    assert card["quantization"] == "int8-dynamic"
    assert card["metrics"]["recall"] > 0 and card["metrics"]["lead_time_s"] > 0


def test_normal_windows_stay_under_the_threshold(shipped: OnnxScorer) -> None:
    # A seed the shipped model was neither trained nor evaluated on.
    # From start-up (the pump warming) to steady running.
    runs = default_source().normal(seed=4242, minutes=60)
    windows = np.concatenate([sliding_windows(run.values, shipped.window) for run in runs])
    scores = [shipped.score(window.tolist()) for window in windows[::4]]
    assert max(scores) < shipped.threshold


def test_bearing_wear_is_flagged_before_the_failure(shipped: OnnxScorer) -> None:
    run = default_source().bearing_wear(seed=4242)
    assert run.failure_s is not None and run.degradation_s is not None
    windows = sliding_windows(run.values, shipped.window)
    healthy = [shipped.score(w) for w in windows[: int(run.degradation_s / run.period_s) // 2]]
    # The last windows before the failure: the bearing is far gone, the pump still runs.
    worn = [shipped.score(w) for w in windows[-5:]]
    assert max(healthy) < shipped.threshold < min(worn)


def test_score_accepts_a_deque_tuples_lists_and_arrays_alike(shipped: OnnxScorer) -> None:
    run = default_source().normal(seed=5, minutes=1)[0]
    window = run.values[: shipped.window]
    as_tuples = [tuple(row) for row in window.tolist()]
    expected = shipped.score(as_tuples)
    # What the reflex engine keeps per device: a bounded deque of row tuples.
    assert shipped.score(deque(as_tuples, maxlen=shipped.window)) == expected
    assert shipped.score(window.tolist()) == expected
    assert shipped.score(window) == expected
    assert shipped.score(window.astype(np.float32)) == expected


@pytest.mark.parametrize(
    "window",
    [
        [[2.0, 50.0, 8.0]],  # one row: numpy would broadcast it to every row
        [[2.0, 50.0]] * 16,  # a metric short
        [[2.0]] * 16,  # one value per row: numpy would broadcast it too
        [[2.0, 50.0, 8.0]] * 15 + [[2.0, 50.0]],  # ragged
        [[2.0, 50.0, 8.0, 1.0]] * 16,
        [],
        [2.0] * 16,  # flat, not rows
    ],
)
def test_wrong_window_shape_is_a_model_error(shipped: OnnxScorer, window: list[object]) -> None:
    with pytest.raises(ModelError, match=r"scores 16 rows x 3 metrics"):
        shipped.score(window)  # type: ignore[arg-type]


def test_missing_model_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        OnnxScorer.load(tmp_path / "nope.onnx")


def test_missing_card_is_a_model_error(tmp_path: Path) -> None:
    model = copy_model(tmp_path)
    card_path(model).unlink()
    with pytest.raises(ModelError, match=r"m\.card\.json is missing"):
        OnnxScorer.load(model)


def test_invalid_card_is_a_model_error(tmp_path: Path) -> None:
    model = copy_model(tmp_path)
    card = json.loads(card_path(model).read_text())
    card["inputs"]["window"] = 8
    card_path(model).write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"invalid: inputs: .*shape"):
        OnnxScorer.load(model)
    card_path(model).write_text("{not json")
    with pytest.raises(ModelError, match="invalid"):
        OnnxScorer.load(model)


def test_model_that_differs_from_its_card_is_refused(tmp_path: Path) -> None:
    model = copy_model(tmp_path)
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="sha256"):
        OnnxScorer.load(model)


def test_a_file_that_is_not_onnx_is_a_model_error(tmp_path: Path) -> None:
    model = copy_model(tmp_path)
    model.write_bytes(b"not a model")
    card = json.loads(card_path(model).read_text())
    card["sha256"] = file_sha256(model)
    card_path(model).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="cannot be loaded by onnxruntime"):
        OnnxScorer.load(model)


def test_importing_edge_models_loads_neither_numpy_nor_onnxruntime() -> None:
    code = (
        "import sys, edge.models\n"
        "heavy = [m for m in ('numpy', 'onnxruntime', 'onnx') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_score_is_what_a_bare_session_computes(shipped: OnnxScorer) -> None:
    from edge.models.scorer import open_session

    session = open_session(shipped.path)
    run = default_source().bearing_wear(seed=8)
    for window in sliding_windows(run.values, shipped.window)[::37].astype(np.float32):
        (bare,) = session.run(None, {"window": window[None]})
        # The bound buffers are rewritten on every call: never a stale score.
        assert shipped.score(window.tolist()) == float(bare[0])


def test_public_surface_is_pinned() -> None:
    import edge.models

    assert edge.models.__all__ == ["DEFAULT_MODEL", "ModelCard", "OnnxScorer", "card_path"]
