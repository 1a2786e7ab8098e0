"""`baton models train-anomaly` and the trainer's pieces, with real onnx and onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge.errors import ModelError
from edge.models import OnnxScorer, card_path
from edge.models.card import file_sha256
from edge.models.cli import models_group
from edge.models.data import SimRun, default_source
from edge.models.evaluate import fault_figures, session_scores
from edge.models.export import build_model
from edge.models.quantize import QUANTIZED_OP, quantize_int8
from edge.models.train import fit, reference_scores

# Enough normal operation for a usable model, little enough to train in about a second.
SMALL_MINUTES = "20"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("models")
    args = ["train-anomaly", "--out", str(out), "--seed", "3", "--minutes", SMALL_MINUTES]
    result = CliRunner().invoke(models_group, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out / "bearing.onnx", result.output


@pytest.fixture(scope="module")
def normal_run() -> SimRun:
    (run,) = default_source().normal(seed=11, minutes=20)
    return run


def test_train_anomaly_writes_a_loadable_int8_model_and_its_card(trained: tuple[Path, str]) -> None:
    model, output = trained
    card = json.loads(card_path(model).read_text())
    assert card["sha256"] == file_sha256(model)
    assert card["quantization"] == "int8-dynamic"
    assert card["metrics"]["recall"] > 0
    assert card["metrics"]["lead_time_s"] > 0  # flagged before the simulated failure
    period = card["training"]["period_s"]
    assert card["training"]["seed"] == 3 and card["training"]["samples"] == 20 * 60 / period
    scorer = OnnxScorer.load(model)
    assert scorer.threshold == card["threshold"]
    assert "lead time" in output and "precision" in output
    assert "fitting on 600 readings" in output  # progress on the way


def test_inspect_prints_the_card(trained: tuple[Path, str]) -> None:
    model, _ = trained
    result = CliRunner().invoke(models_group, ["inspect", str(model)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "bearing 1.0.0" in result.output and "sha256 ok" in result.output
    raw = CliRunner().invoke(models_group, ["inspect", "--json", str(model)])
    assert json.loads(raw.output)["sha256"] == file_sha256(model)


def test_no_quantize_writes_a_float_model(tmp_path: Path) -> None:
    args = ["train-anomaly", "--out", str(tmp_path), "--minutes", "10", "--no-quantize"]
    result = CliRunner().invoke(models_group, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "bearing.card.json").read_text())
    assert card["quantization"] is None and card["metrics"]["int8_agreement"] is None
    assert OnnxScorer.load(tmp_path / "bearing.onnx").card.quantization is None


def test_float_graph_computes_what_the_numpy_trainer_computes(
    tmp_path: Path, normal_run: SimRun
) -> None:
    fitted = fit([normal_run.values], 16)
    path = tmp_path / "f.onnx"
    path.write_bytes(build_model(fitted, 3, name="t", doc="").SerializeToString())
    graph = session_scores(path, normal_run.values, 16)
    np.testing.assert_allclose(graph, reference_scores(fitted, normal_run.values), rtol=1e-3)
    assert 0.5 < float(np.mean(graph)) < 1.5  # about 1 on the normal data it was fitted on


def test_int8_model_agrees_with_the_float_model(tmp_path: Path, normal_run: SimRun) -> None:
    fitted = fit([normal_run.values], 16)
    float_path, int8_path = tmp_path / "f.onnx", tmp_path / "q.onnx"
    float_path.write_bytes(build_model(fitted, 3, name="t", doc="").SerializeToString())
    assert quantize_int8(float_path, int8_path) == 2  # both MatMul weights are int8 now
    fault = default_source().bearing_wear(seed=12)
    for values in (normal_run.values, fault.values):
        exact = session_scores(float_path, values, 16)
        int8 = session_scores(int8_path, values, 16)
        relative = np.abs(int8 - exact) / np.maximum(exact, 1.0)
        assert float(np.median(relative)) < 0.03 and float(np.max(relative)) < 0.25
    # Same alarms on the fault run, at the float model's own threshold.
    threshold = float(np.percentile(session_scores(float_path, normal_run.values, 16), 99.9))
    exact_alarms = session_scores(float_path, fault.values, 16) > threshold
    int8_alarms = session_scores(int8_path, fault.values, 16) > threshold
    assert float(np.mean(exact_alarms == int8_alarms)) > 0.99
    assert (
        fault_figures(session_scores(int8_path, fault.values, 16), fault, 16, threshold).recall > 0
    )


def test_quantising_a_graph_without_matmul_weights_is_a_model_error(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, tmp_path / "plain.onnx")
    with pytest.raises(ModelError, match="no MatMul"):
        quantize_int8(tmp_path / "plain.onnx", tmp_path / "q.onnx")
    assert QUANTIZED_OP == "MatMulInteger"


def test_too_little_training_data_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="too few"):
        fit([np.zeros((80, 3))], 16)
