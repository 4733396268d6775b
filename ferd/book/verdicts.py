"""Verdicts from paired seed intervals: does method A beat method B on a metric, over seeds?

Two methods trained with the same seeds share their teacher, initial student draws and attack starts, so the
comparison is paired by seed: the per-seed difference d_s = metric_A(s) - metric_B(s), its mean, and a
Student-t 95 % confidence interval (`scipy.stats.ttest_rel`, not a hand-rolled formula). The verdict on a claim
"A is better than B" is

    supported       the whole interval lies on the better side of 0;
    not supported   the whole interval lies on the worse side of 0 (the data contradict the claim);
    inconclusive    the interval contains 0, or there are fewer than two seeds (no interval at all).

A single seed never gives a verdict. The resolution of the metric (a per-class accuracy on n images per class
moves in steps of 100/n points) is printed beside it by the chapters, not folded in here.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ferd.errors import ConfigError

VERDICTS = ("supported", "not supported", "inconclusive")


@dataclass(frozen=True)
class PairedComparison:
    """A against B on one metric over paired seeds; `diff` = mean of A - B, [low, high] its interval."""

    n: int
    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float
    p_value: float
    confidence: float
    higher_is_better: bool
    verdict: str

    def as_dict(self) -> dict[str, float | int | str | bool]:
        return asdict(self)

    def interval_text(self, digits: int = 2, unit: str = "") -> str:
        """'+1.20 [-0.40, +2.80]' (or '+1.20 (one seed, no interval)')."""
        if math.isnan(self.low):
            return f"{self.diff:+.{digits}f}{unit} ({self.n} seed{'s' if self.n != 1 else ''}, no interval)"
        return f"{self.diff:+.{digits}f}{unit} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def compare_paired(a: Sequence[float], b: Sequence[float], higher_is_better: bool = True,
                   confidence: float = 0.95) -> PairedComparison:
    """Paired comparison of per-seed values `a` and `b` (same seeds, same order).

    Example: compare_paired(worst_ferd, worst_dfrd) -> verdict on "FERD's worst class is higher".
    NSD is lower-is-better: pass `higher_is_better=False`.
    """
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise ConfigError("paired values", f"{a_arr.shape} and {b_arr.shape}", "two 1-d sequences of equal length")
    if not 0 < confidence < 1:
        raise ConfigError("confidence", confidence, "a number in (0, 1)")
    n = len(a_arr)
    diff = float(np.mean(a_arr - b_arr)) if n else math.nan
    low = high = p = math.nan
    if n >= 2:
        d = a_arr - b_arr
        if np.allclose(d, d[0]):  # no spread: the interval is the point itself
            low = high = float(d[0])
            p = 0.0 if d[0] != 0 else 1.0
        else:
            res = stats.ttest_rel(a_arr, b_arr)
            ci = res.confidence_interval(confidence)
            low, high, p = float(ci.low), float(ci.high), float(res.pvalue)
    return PairedComparison(n=n, mean_a=float(np.mean(a_arr)) if n else math.nan,
                            mean_b=float(np.mean(b_arr)) if n else math.nan, diff=diff, low=low, high=high,
                            p_value=p, confidence=confidence, higher_is_better=higher_is_better,
                            verdict=verdict(low, high, higher_is_better))


def verdict(low: float, high: float, higher_is_better: bool = True) -> str:
    """'supported', 'not supported' or 'inconclusive' from an interval of A - B (see the module doc)."""
    if math.isnan(low) or math.isnan(high):
        return "inconclusive"
    lo, hi = (low, high) if higher_is_better else (-high, -low)
    if lo > 0:
        return "supported"
    if hi < 0:
        return "not supported"
    return "inconclusive"


def paired_table(values: pd.DataFrame, a: str, b: str, metrics: Sequence[str],
                 lower_is_better: Sequence[str] = ("nsd",), by: Sequence[str] = ()) -> pd.DataFrame:
    """One row per metric (and per group of `by`): A and B means, the paired difference, its interval and verdict.

    `values` has one row per (method, seed, *by) with a column per metric and columns `method` and `seed`;
    only seeds present for both methods are paired.
    """
    rows = []
    groups = values.groupby(list(by), sort=False) if by else [((), values)]
    for key, g in groups:
        wide_a = g[g["method"] == a].set_index("seed")
        wide_b = g[g["method"] == b].set_index("seed")
        seeds = sorted(set(wide_a.index) & set(wide_b.index))
        for m in metrics:
            c = compare_paired(wide_a.loc[seeds, m].to_numpy(), wide_b.loc[seeds, m].to_numpy(),
                               higher_is_better=m not in lower_is_better)
            label = dict(zip(by, key if isinstance(key, tuple) else (key,)))
            rows.append({**label, "metric": m, "seeds": c.n, f"{a}": c.mean_a, f"{b}": c.mean_b,
                         "difference": c.diff, "ci_low": c.low, "ci_high": c.high, "p_value": c.p_value,
                         "verdict": c.verdict})
    return pd.DataFrame(rows)
