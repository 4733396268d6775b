"""ferd.toolkit.metrics: the identities of spec 10.11 and the definitions of spec 2.2."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ferd.errors import ConfigError
from ferd.toolkit.metrics import average, nsd, worst, worst_k

ACC10 = [0.9, 0.95, 0.8, 0.85, 0.7, 0.97, 0.5, 0.96, 0.98, 0.94]


def test_worst10_with_ten_classes_equals_worst():
    assert worst_k(ACC10, 0.1) == worst(ACC10) == 0.5


def test_worst10_means_the_ceil_frac_c_lowest():
    rng = np.random.default_rng(0)
    acc = rng.uniform(size=100)
    assert worst_k(acc) == pytest.approx(np.sort(acc)[:10].mean())
    acc200 = rng.uniform(size=200)
    assert worst_k(acc200) == pytest.approx(np.sort(acc200)[:20].mean())
    assert worst_k([0.1, 0.2, 0.3], 0.5) == pytest.approx(0.15)  # ceil(1.5) = 2
    assert worst_k(ACC10, 1.0) == pytest.approx(np.mean(ACC10))


def test_nsd_scale_invariant_and_zero_for_equal():
    assert nsd(ACC10) == pytest.approx(nsd(100 * np.asarray(ACC10)))
    assert nsd([0.4] * 10) == 0.0
    assert nsd(ACC10) > 0


def test_nsd_population_vs_sample():
    acc = np.asarray([0.2, 0.4, 0.6, 0.8])
    assert nsd(acc) == pytest.approx(acc.std(ddof=0) / acc.mean())
    assert nsd(acc, std="sample") == pytest.approx(acc.std(ddof=1) / acc.mean())
    assert nsd(acc, std="sample") == pytest.approx(nsd(acc) * math.sqrt(4 / 3))


def test_nsd_nan_at_zero_mean():
    assert math.isnan(nsd([0.0, 0.0, 0.0]))
    assert math.isnan(nsd([0.3], std="sample"))


def test_average_equals_overall_accuracy_on_balanced_set():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(10), 30)
    correct = rng.uniform(size=labels.size) < 0.7
    per_class = [correct[labels == c].mean() for c in range(10)]
    assert average(per_class) == pytest.approx(correct.mean())


def test_accepts_sequences_and_arrays_and_rejects_bad_input():
    assert average((0.5, 1.0)) == average(np.array([0.5, 1.0])) == 0.75
    with pytest.raises(ConfigError, match="acc"):
        average([])
    with pytest.raises(ConfigError, match="acc"):
        worst([0.5, float("nan")])
    with pytest.raises(ConfigError, match="std"):
        nsd(ACC10, std="unbiased")
    with pytest.raises(ConfigError, match="frac"):
        worst_k(ACC10, 0.0)
