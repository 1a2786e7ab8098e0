"""The anomaly model shipped with baton: `bearing.onnx` and its card (see ../README.md)."""
