"""`OnnxScorer`: one ONNX anomaly model, scoring a window of readings on the reflex path.

    scorer = OnnxScorer.load()                  # the shipped bearing model
    if scorer.score(last_rows) > scorer.threshold: ...

`load` reads the model card beside the file, checks the file's sha256 against it and
opens one single-threaded onnxruntime session. `score` copies the window into a
preallocated input buffer that is bound to the session once (IOBinding), so a call is a
copy of `window x metrics` floats plus the run itself: no dict, no output allocation.
numpy and onnxruntime are imported by `load`, never at module import, so a rules-only
daemon does not pay for them; onnxruntime's own telemetry is off unless the environment
turns it on (`ORT_DISABLE_TELEMETRY=0`).

A scorer is not thread-safe (one input buffer): give each thread or task its own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from edge.errors import ModelError
from edge.models.card import ModelCard, file_sha256, read_card

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime
    from numpy.typing import NDArray

    # Rows of readings, oldest first; a numpy array `[window, metrics]` works as well.
    Window: TypeAlias = Sequence[Sequence[float]] | NDArray[np.floating[Any]]

DEFAULT_MODEL = Path(__file__).with_name("default") / "bearing.onnx"
# onnxruntime's Linux wheels start Microsoft's telemetry (1DS) when the library loads: a
# thread, a device id and an event database written under ~/.cache/Microsoft/, and
# ~1.9 MB of RSS. A gateway keeps its flash and its uplink for its own data. Read by the
# library as it loads, so set before the first import; an operator's own setting wins.
TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY"
_chain = chain.from_iterable


def open_session(path: Path) -> onnxruntime.InferenceSession:
    os.environ.setdefault(TELEMETRY_ENV, "1")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # The gateway has few cores and the reflex loop must not contend with ingest: no
    # thread pool at all, the graph runs on the caller's thread.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # No BFC arena: it keeps its first chunk for the process's life (~0.2 MB for the
    # shipped model), and scoring a window is as fast without it (docs/benchmarks.md).
    options.enable_cpu_mem_arena = False
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: its warnings are not the operator's business
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped Fail/InvalidGraph errors
        raise ModelError(f"model {path} cannot be loaded by onnxruntime: {exc}") from exc


def _check_signature(session: onnxruntime.InferenceSession, card: ModelCard, path: Path) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(f"model {path} must have one input and one output")
    expected = list(card.inputs.shape)
    if inputs[0].shape != expected or inputs[0].type != "tensor(float)":
        raise ModelError(
            f"model {path} takes {inputs[0].type} {inputs[0].shape}, "
            f"its card says float32 {expected}"
        )


def _describe(window: Window) -> str:
    try:
        widths = sorted({len(row) for row in window})
        return f"{len(window)} rows of {'/'.join(map(str, widths)) or 0} values"
    except TypeError:  # callers are typed, but a reading can still arrive as anything
        return f"a {type(window).__name__}"


class OnnxScorer:
    """One loaded anomaly model; `score(window)` is higher for more anomalous windows."""

    __slots__ = (
        "_binding",
        "_buffer",
        "_dtype",
        "_flat",
        "_fromiter",
        "_ndarray",
        "_output",
        "_session",
        "_shape",
        "card",
        "path",
    )

    def __init__(self, path: Path, card: ModelCard, session: onnxruntime.InferenceSession) -> None:
        import numpy as np

        self.path = path
        self.card = card
        self._session = session
        self._buffer: NDArray[np.float32] = np.zeros(card.inputs.shape, dtype=np.float32)
        self._output: NDArray[np.float32] = np.zeros((1,), dtype=np.float32)
        self._flat: NDArray[np.float32] = self._buffer.reshape(-1)  # a view, not a copy
        self._shape = (card.inputs.window, len(card.inputs.metrics))
        # numpy's names, kept here so that `score` needs no module-level numpy import.
        self._ndarray, self._fromiter, self._dtype = np.ndarray, np.fromiter, np.float32
        # Bind both buffers once by address: each run reads and writes them in place.
        binding = session.io_binding()
        binding.bind_input(
            session.get_inputs()[0].name,
            "cpu",
            0,
            np.float32,
            list(card.inputs.shape),
            self._buffer.ctypes.data,
        )
        binding.bind_output(
            session.get_outputs()[0].name, "cpu", 0, np.float32, [1], self._output.ctypes.data
        )
        self._binding = binding

    @classmethod
    def load(cls, path: Path | None = None) -> OnnxScorer:
        """Load `path` (default: the shipped bearing model) and the card beside it."""
        model = DEFAULT_MODEL if path is None else Path(path)
        if not model.is_file():
            raise ModelError(f"model file {model} does not exist")
        card = read_card(model)
        digest = file_sha256(model)
        if digest != card.sha256:
            raise ModelError(
                f"model {model} has sha256 {digest[:12]}…, its card says {card.sha256[:12]}…"
            )
        session = open_session(model)
        _check_signature(session, card, model)
        return cls(model, card, session)

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.card.inputs.metrics

    @property
    def window(self) -> int:
        return self.card.inputs.window

    @property
    def threshold(self) -> float:
        return self.card.threshold

    def score(self, window: Window) -> float:
        """Score the last `self.window` readings (oldest first, columns in `self.metrics`)."""
        rows, cols = self._shape
        try:
            # Checked first: numpy would broadcast one row, or rows of one value, silently.
            if len(window) != rows or len(window[0]) != cols or len(window[-1]) != cols:
                raise ValueError("wrong shape")
            if isinstance(window, self._ndarray):
                self._buffer[0] = window
            else:
                # Twice as fast as numpy's nested-sequence discovery for rows of floats;
                # `count` makes a short window an error rather than stale buffer values.
                self._flat[:] = self._fromiter(_chain(window), self._dtype, rows * cols)
        except (ValueError, TypeError, IndexError) as exc:  # wrong shape, ragged, not numbers
            raise ModelError(
                f"model {self.name} scores {self.window} rows x {len(self.metrics)} metrics "
                f"{list(self.metrics)}, got {_describe(window)}"
            ) from exc
        self._session.run_with_iobinding(self._binding)
        return float(self._output[0])

    def __repr__(self) -> str:
        return f"OnnxScorer({self.name!r}, version={self.version!r}, path={str(self.path)!r})"
