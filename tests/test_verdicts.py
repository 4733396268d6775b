"""Verdicts come from paired seed intervals (scipy), never from one seed."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ferd.book.verdicts import compare_paired, paired_table, verdict
from ferd.errors import ConfigError


def test_interval_is_scipys_paired_t_interval():
    a, b = [10.0, 12.0, 11.0, 13.0, 12.5], [9.0, 11.5, 10.0, 11.0, 12.0]
    c = compare_paired(a, b)
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert c.n == 5 and math.isclose(c.diff, np.mean(np.subtract(a, b)))
    assert math.isclose(c.low, ci.low) and math.isclose(c.high, ci.high) and c.low < c.diff < c.high
    assert c.verdict == "supported"  # every seed better, interval above 0


def test_verdict_directions_and_inconclusive():
    assert verdict(0.1, 2.0) == "supported" and verdict(-2.0, -0.1) == "not supported"
    assert verdict(-1.0, 1.0) == "inconclusive" and verdict(math.nan, math.nan) == "inconclusive"
    assert verdict(-2.0, -0.1, higher_is_better=False) == "supported"  # NSD: lower is better
    noisy = compare_paired([1.0, -1.0, 2.0], [0.0, 0.0, 0.0])
    assert noisy.verdict == "inconclusive" and noisy.low < 0 < noisy.high


def test_one_seed_never_gives_a_verdict():
    c = compare_paired([80.0], [10.0])
    assert c.verdict == "inconclusive" and math.isnan(c.low) and "no interval" in c.interval_text()


def test_bad_input_is_named():
    with pytest.raises(ConfigError, match="paired values"):
        compare_paired([1.0, 2.0], [1.0])
    with pytest.raises(ConfigError, match="confidence"):
        compare_paired([1.0, 2.0], [1.0, 0.0], confidence=1.5)


def test_paired_table_pairs_by_seed_and_flags_lower_is_better():
    rows = [{"method": m, "seed": s, "worst": w, "nsd": n}
            for m, s, w, n in [("ferd", 0, 5.0, 0.40), ("ferd", 1, 6.0, 0.41), ("ferd", 2, 7.0, 0.39),
                               ("dfrd", 0, 4.0, 0.45), ("dfrd", 1, 4.5, 0.46), ("dfrd", 2, 5.5, 0.44),
                               ("dfrd", 3, 99.0, 0.0)]]  # seed 3 has no partner: left out
    t = paired_table(pd.DataFrame(rows), "ferd", "dfrd", ["worst", "nsd"])
    assert list(t["seeds"]) == [3, 3]
    assert list(t["verdict"]) == ["supported", "supported"]  # NSD fell: better

