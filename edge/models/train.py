"""Fit the anomaly scorer on normal operation: a Mahalanobis distance of window features.

The score of a window is the mean squared whitened feature,

    z = (f - mu) / sigma                    features standardised one by one
    score = |z @ V / sqrt(lambda)|^2 / k    V, lambda: eigenvectors/values of corr(z)

with `f = window_features(standardised window)` and `k = 3n`. That is the squared
Mahalanobis distance over `k`: about 1 on typical normal windows, growing with the
square of how far (correlations included) a window is from normal. It needs no
iteration: one pass over the data, fitted by numpy in milliseconds.

The eigen form rather than a Cholesky factor is for int8: the rotation `V` is
orthonormal (every weight in [-1, 1], the best case for one int8 scale per tensor) and
the badly scaled part, `1 / sqrt(lambda)`, stays a float multiply in the graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edge.errors import ModelError
from edge.models.features import sliding_windows, window_features

if TYPE_CHECKING:
    from numpy.typing import NDArray

# Floor on the eigenvalues of the feature correlation, relative to the largest:
# correlated features (a slow temperature cycle moves several together) would
# otherwise give near-zero eigenvalues whose inverse amplifies int8 rounding noise.
EIGEN_FLOOR = 1e-3
# A metric or feature that never moved in training still gets a finite scale.
MIN_STD = 1e-6
# Training windows per feature below which the covariance is too poorly estimated.
MIN_WINDOWS_PER_FEATURE = 8


@dataclass(frozen=True, slots=True)
class Fitted:
    """Everything the graph needs; shapes for `n` metrics and `k = 3n` features."""

    window: int
    input_mean: NDArray[np.float64]  # [n] training mean of each metric
    input_scale: NDArray[np.float64]  # [n] 1 / training std of each metric
    feature_mean: NDArray[np.float64]  # [k]
    feature_scale: NDArray[np.float64]  # [k] 1 / training std of each feature
    rotation: NDArray[np.float64]  # [k, k] orthonormal eigenvectors (columns)
    component_scale: NDArray[np.float64]  # [k] 1 / sqrt(eigenvalue)

    def standardise(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        return (values - self.input_mean) * self.input_scale


def _features(
    values: NDArray[np.float64], mean: NDArray[np.float64], scale: NDArray[np.float64], window: int
) -> NDArray[np.float64]:
    return window_features(sliding_windows((values - mean) * scale, window))


def fit(segments: Sequence[NDArray[np.float64]], window: int) -> Fitted:
    """Fit on runs of normal operation, each `[rows, n]` oldest first.

    Windows never straddle two runs: the jump between the end of one and the start of
    the next is not something a pump does.
    """
    values = np.concatenate(segments)
    n_features = 3 * values.shape[1]
    windows = sum(max(0, len(segment) - window + 1) for segment in segments)
    if windows < MIN_WINDOWS_PER_FEATURE * n_features:
        raise ModelError(
            f"{values.shape[0]} training readings give {windows} windows of {window}: too few "
            f"for {n_features} features (need {MIN_WINDOWS_PER_FEATURE * n_features})"
        )
    input_mean = values.mean(axis=0)
    input_scale = 1.0 / np.maximum(values.std(axis=0), MIN_STD)
    features = np.concatenate(
        [_features(segment, input_mean, input_scale, window) for segment in segments]
    )
    feature_mean = features.mean(axis=0)
    feature_scale = 1.0 / np.maximum(features.std(axis=0), MIN_STD)
    correlation = np.cov((features - feature_mean) * feature_scale, rowvar=False)
    eigenvalues, rotation = np.linalg.eigh(correlation)
    eigenvalues = np.maximum(eigenvalues, EIGEN_FLOOR * eigenvalues.max())
    return Fitted(
        window=window,
        input_mean=input_mean,
        input_scale=input_scale,
        feature_mean=feature_mean,
        feature_scale=feature_scale,
        rotation=rotation,
        component_scale=1.0 / np.sqrt(eigenvalues),
    )


def reference_scores(fitted: Fitted, values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Score of every window of `values` `[rows, n]`, in float64: what the graph computes."""
    features = _features(values, fitted.input_mean, fitted.input_scale, fitted.window)
    standard = (features - fitted.feature_mean) * fitted.feature_scale
    whitened = (standard @ fitted.rotation) * fitted.component_scale
    scores: NDArray[np.float64] = np.mean(whitened * whitened, axis=1)
    return scores
