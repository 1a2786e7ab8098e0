"""Build the ONNX graph of a fitted scorer with `onnx.helper` (opset 17).

Input `window` `[1, window, n]` float32, the raw readings oldest first; output `score`
`[1]`. All feature computation lives in the graph, so the caller passes the window as it
is and nothing outside the file has to agree with the trainer:

    window ─Sub─Mul─┬─Reshape─MatMul(linear_operator)───────┐ means, slopes
                    └─ReduceMean─Sub─Mul─ReduceMean─Sqrt────┤ stds
           Concat─Sub─Mul─MatMul(rotation)─Mul─Mul─ReduceMean─▶ score

The two MatMul weights are initializers, so `quantize_dynamic` turns both into int8;
everything they are fed is standardised first, because dynamic quantisation gives a
whole activation tensor one uint8 scale and raw °C next to mm/s would drown the
vibration in rounding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edge.models.features import linear_operator

if TYPE_CHECKING:
    import onnx

    from edge.models.train import Fitted

OPSET = 17
# IR 8 is what onnxruntime 1.17 (our floor, still common on gateways) reads with opset 17.
IR_VERSION = 8
INPUT_NAME = "window"
OUTPUT_NAME = "score"


def _initializers(fitted: Fitted, n_metrics: int) -> list[onnx.TensorProto]:
    from onnx import numpy_helper

    arrays = {
        "input_mean": fitted.input_mean,
        "input_scale": fitted.input_scale,
        "flat_shape": np.array([1, fitted.window * n_metrics], dtype=np.int64),
        "linear_operator": linear_operator(fitted.window, n_metrics),
        "feature_mean": fitted.feature_mean,
        "feature_scale": fitted.feature_scale,
        "rotation": fitted.rotation,
        "component_scale": fitted.component_scale,
    }
    return [
        numpy_helper.from_array(a if a.dtype == np.int64 else a.astype(np.float32), name=name)
        for name, a in arrays.items()
    ]


def _nodes() -> list[onnx.NodeProto]:
    from onnx import helper

    node = helper.make_node
    return [
        node("Sub", [INPUT_NAME, "input_mean"], ["centred_in"]),
        node("Mul", ["centred_in", "input_scale"], ["standard"]),
        # Means and slopes: one MatMul over the flattened window.
        node("Reshape", ["standard", "flat_shape"], ["flat"]),
        node("MatMul", ["flat", "linear_operator"], ["linear"]),
        # Population std per metric over the window rows.
        node("ReduceMean", ["standard"], ["row_mean"], axes=[1], keepdims=1),
        node("Sub", ["standard", "row_mean"], ["deviation"]),
        node("Mul", ["deviation", "deviation"], ["squared_dev"]),
        node("ReduceMean", ["squared_dev"], ["variance"], axes=[1], keepdims=0),
        node("Sqrt", ["variance"], ["spread"]),
        node("Concat", ["linear", "spread"], ["features"], axis=1),
        # Mahalanobis: standardise, rotate onto the principal axes, scale each axis.
        node("Sub", ["features", "feature_mean"], ["centred_features"]),
        node("Mul", ["centred_features", "feature_scale"], ["standard_features"]),
        node("MatMul", ["standard_features", "rotation"], ["components"]),
        node("Mul", ["components", "component_scale"], ["whitened"]),
        node("Mul", ["whitened", "whitened"], ["whitened_sq"]),
        node("ReduceMean", ["whitened_sq"], [OUTPUT_NAME], axes=[1], keepdims=0),
    ]


def build_model(fitted: Fitted, n_metrics: int, *, name: str, doc: str) -> onnx.ModelProto:
    """The float32 ONNX model of `fitted`, checked by `onnx.checker`."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        _nodes(),
        name,
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, [1, fitted.window, n_metrics]
            )
        ],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1])],
        initializer=_initializers(fitted, n_metrics),
        doc_string=doc,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="baton",
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(model, full_check=True)
    return model
