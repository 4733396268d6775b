"""Class-wise robustness metrics of spec 2.2: Avg., Worst, Worst-10% and NSD.

Each function takes the per-class accuracies ``a_c`` (a numpy array, tensor-free sequence or list,
fractions or percentages alike) and returns a float. Higher is better for Avg./Worst/Worst-10%,
lower for NSD.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ferd.errors import ConfigError

ArrayLike = Sequence[float] | np.ndarray


def _as_accuracies(acc: ArrayLike) -> np.ndarray:
    a = np.asarray(acc, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ConfigError("acc", list(a), "a non-empty sequence of per-class accuracies")
    if np.isnan(a).any():
        raise ConfigError("acc", list(a), "per-class accuracies without NaN (drop empty classes)")
    return a


def average(acc: ArrayLike) -> float:
    """Avg.: the mean of the per-class accuracies (spec 2.2).

    On a class-balanced test set this equals the overall accuracy (1/N) sum_i 1[y_hat_i = y_i].
    """
    return float(_as_accuracies(acc).mean())


def worst(acc: ArrayLike) -> float:
    """Worst: the smallest per-class accuracy, min_c a_c (spec 2.2; reported for C = 10)."""
    return float(_as_accuracies(acc).min())


def worst_k(acc: ArrayLike, frac: float = 0.1) -> float:
    """Worst-10%: the mean of the k = ceil(frac * C) smallest a_c (spec 2.2; reported for C >= 100).

    For C = 10 and frac = 0.1, k = 1 and it equals :func:`worst`.
    """
    a = _as_accuracies(acc)
    if not isinstance(frac, (int, float)) or isinstance(frac, bool) or not 0 < frac <= 1:
        raise ConfigError("frac", frac, "a fraction in (0, 1]")
    # round before ceil so 0.1 * 10 (= 1.0000000000000002 in floats) gives k = 1, not 2
    k = max(1, math.ceil(round(frac * a.size, 9)))
    return float(np.sort(a)[:k].mean())


def nsd(acc: ArrayLike, std: str = "population") -> float:
    """NSD: normalised standard deviation sigma(a_c) / mu(a_c) (spec 2.2, from ABSLD).

    Args:
        acc: per-class accuracies; NSD is scale-free, so fractions and percentages agree.
        std: "population" (divide by C, the default) or "sample" (divide by C - 1).
    Returns:
        NSD >= 0, 0 for equal accuracies; NaN when the mean accuracy is 0 (or C = 1 with "sample").
    """
    a = _as_accuracies(acc)
    if std not in ("population", "sample"):
        raise ConfigError("std", std, ("population", "sample"))
    ddof = 0 if std == "population" else 1
    mean = a.mean()
    if mean == 0 or a.size - ddof <= 0:
        return float("nan")
    return float(a.std(ddof=ddof) / mean)
