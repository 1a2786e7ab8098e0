"""Window features: the numpy reference of what the ONNX graph computes.

A window is `window` consecutive readings (oldest first) of `n` metrics. Every metric
gives three features, all on readings standardised by the training statistics:

    mean    the level                    (a worn bearing vibrates harder)
    slope   least-squares trend per row  (wear accelerates)
    std     spread inside the window     (a failing bearing is also noisier)

Feature order is `[mean_0..mean_n-1, slope_0..slope_n-1, std_0..std_n-1]`. Mean and
slope are linear in the window, so they are one matrix product with `linear_operator`;
that matrix is a MatMul weight in the graph, which is what int8 dynamic quantisation
quantises. The trainer uses these functions, and the tests check that the graph agrees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

FEATURE_KINDS = ("mean", "slope", "std")


def feature_names(metrics: tuple[str, ...]) -> tuple[str, ...]:
    """Names of the features in graph order, e.g. `vibration_rms.slope`."""
    return tuple(f"{metric}.{kind}" for kind in FEATURE_KINDS for metric in metrics)


def linear_operator(window: int, n_metrics: int) -> NDArray[np.float64]:
    """The `[window * n, 2n]` matrix taking a flattened window to its means and slopes.

    Row `t * n + m` of the flattened window holds reading `t` of metric `m` (row-major,
    exactly as the graph reshapes `[1, window, n]`). Each column is scaled to a largest
    weight of 1 so that int8 keeps the small slope weights as finely as the mean ones;
    the trainer's feature scale undoes it.
    """
    centred_t = np.arange(window, dtype=np.float64) - (window - 1) / 2.0
    mean_weights = np.full(window, 1.0 / window)
    slope_weights = centred_t / float(np.sum(centred_t * centred_t))
    op = np.zeros((window, n_metrics, 2, n_metrics))
    for metric in range(n_metrics):
        op[:, metric, 0, metric] = mean_weights
        op[:, metric, 1, metric] = slope_weights
    flat = op.reshape(window * n_metrics, 2 * n_metrics)
    scaled: NDArray[np.float64] = flat / np.abs(flat).max(axis=0)
    return scaled


def sliding_windows(values: NDArray[np.float64], window: int) -> NDArray[np.float64]:
    """Every window of `window` consecutive rows: `[rows - window + 1, window, n]` (a view)."""
    if values.shape[0] < window:
        return np.empty((0, window, values.shape[1]))
    views = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)
    # sliding_window_view puts the window axis last: [k, n, window] -> [k, window, n].
    windows: NDArray[np.float64] = views.transpose(0, 2, 1)
    return windows


def window_features(windows: NDArray[np.float64]) -> NDArray[np.float64]:
    """Features of standardised windows `[k, window, n]` -> `[k, 3n]` (means and slopes
    in the column scale of `linear_operator`)."""
    count, window, n_metrics = windows.shape
    linear = windows.reshape(count, window * n_metrics) @ linear_operator(window, n_metrics)
    centred = windows - windows.mean(axis=1, keepdims=True)
    spread = np.sqrt(np.mean(centred * centred, axis=1))
    return np.concatenate([linear, spread], axis=1)
