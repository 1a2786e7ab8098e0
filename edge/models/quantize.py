"""int8 dynamic quantisation with onnxruntime's own tool, and a check that it happened.

`quantize_dynamic` turns each MatMul with an initializer weight into
DynamicQuantizeLinear + MatMulInteger: weights stored as int8, activations quantised to
uint8 per call. Our graph keeps its two linear maps as MatMul initializers for exactly
that reason (see `export`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from edge.errors import ModelError

QUANTIZED_OP = "MatMulInteger"


class _DropPreprocessHint(logging.Filter):
    """onnxruntime logs, on the root logger, advice to run its pre-processing (symbolic
    shape inference, which needs sympy). Our graph has static shapes and nothing to fuse,
    so the advice is noise in the CLI's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_int8(float_path: Path, out_path: Path) -> int:
    """Write the int8 model of `float_path` to `out_path`; return how many MatMuls became int8."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    hint = _DropPreprocessHint()
    root.addFilter(hint)
    try:
        quantize_dynamic(float_path, out_path, weight_type=QuantType.QInt8)
    except Exception as exc:  # the quantiser raises bare Exceptions of many kinds
        raise ModelError(f"int8 quantisation of {float_path} failed: {exc}") from exc
    finally:
        root.removeFilter(hint)
    nodes = onnx.load(out_path).graph.node
    quantized = sum(1 for node in nodes if node.op_type == QUANTIZED_OP)
    if quantized == 0:
        raise ModelError(f"{float_path} has no MatMul with a constant weight to quantise")
    return quantized
