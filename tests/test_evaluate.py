"""ferd.toolkit.evaluate: the tidy per-class table, the robust-accuracy convention, summaries (spec 2.2-2.3, 9)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from toy_problem import conv_bn, make_split, trained_mlp

from ferd.errors import ConfigError
from ferd.toolkit.attacks import FGSM, KLPGD, PGD, Clean
from ferd.toolkit.evaluate import attack_confusion, evaluate, format_table, summarize, targeted_success_matrix

EPS, ALPHA = 0.1, 0.025


@pytest.fixture(scope="module")
def model():
    return trained_mlp()


@pytest.fixture(scope="module")
def split():
    # a harder (lower-amplitude) test set, so some clean points are wrong
    return make_split(n_per_class=30, amplitude=0.03, seed=7, uint8=True)


def _float(split):
    return split.images.float() / 255


def test_tidy_frame(model, split):
    attacks = {"Clean": Clean(model), "PGD": PGD(model, EPS, ALPHA, 5)}
    frame = evaluate(model, split, attacks, batch_size=32, progress=False)
    assert list(frame.columns) == ["attack", "class_index", "class_name", "correct", "count",
                                   "accuracy"]
    assert list(frame["attack"]) == ["Clean"] * 4 + ["PGD"] * 4
    assert list(frame["class_name"][:4]) == split.classes
    assert (frame["count"] == 30).all()
    assert frame["accuracy"].between(0, 1).all()
    np.testing.assert_allclose(frame["accuracy"], frame["correct"] / frame["count"])
    clean = (model(_float(split)).argmax(1) == split.labels).numpy()
    assert frame.loc[frame.attack == "Clean", "correct"].sum() == clean.sum()
    assert 0 < clean.mean() < 1
    assert (frame.loc[frame.attack == "PGD", "correct"].to_numpy()
            <= frame.loc[frame.attack == "Clean", "correct"].to_numpy()).all()


@pytest.mark.parametrize("make", [lambda m: PGD(m, EPS, ALPHA, 10, random_start=False),
                                  lambda m: FGSM(m, EPS, start="none")])
def test_attacking_correct_points_only_matches_attacking_all(model, split, make):
    frame = evaluate(model, split, {"atk": make(model)}, batch_size=16, progress=False)
    x, y = _float(split), split.labels
    with torch.no_grad():
        clean_ok = model(x).argmax(1) == y
        robust = clean_ok & (model(make(model)(x, y)).argmax(1) == y)
    np.testing.assert_array_equal(frame["correct"], torch.bincount(y[robust], minlength=4).numpy())


def test_reproducible_and_model_state_restored(split):
    model = conv_bn()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attacks = {"PGD": PGD(model, EPS, ALPHA, 3)}
    a = evaluate(model, split, attacks, batch_size=64, progress=False)
    b = evaluate(model, split, attacks, batch_size=64, progress=False)
    pd.testing.assert_frame_equal(a, b)
    assert all(m.training for m in model.modules())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # BN untouched


def test_evaluate_validation(model, split):
    with pytest.raises(ConfigError, match="attacks"):
        evaluate(model, split, {}, progress=False)
    with pytest.raises(ConfigError, match="attacks"):
        evaluate(model, split, {"KL": KLPGD(model, EPS, ALPHA, 2)}, progress=False)
    with pytest.raises(ConfigError, match="batch_size"):
        evaluate(model, split, {"Clean": Clean(model)}, batch_size=0, progress=False)
    with pytest.raises(ConfigError, match="split"):
        evaluate(model, object(), {"Clean": Clean(model)}, progress=False)
    with pytest.raises(ConfigError, match="model dtype"):
        evaluate(trained_mlp(steps=1).double(), split, {"Clean": Clean(model)}, progress=False)


def test_summarize_and_format_table():
    per_class = pd.DataFrame({
        "attack": ["Clean"] * 10 + ["PGD"] * 10, "class_index": list(range(10)) * 2,
        "class_name": [f"c{i}" for i in range(10)] * 2,
        "correct": [90] * 9 + [60] + [0] * 10, "count": [100] * 20})
    per_class["accuracy"] = per_class["correct"] / per_class["count"]
    summary = summarize(per_class)
    assert list(summary.columns) == ["attack", "avg", "worst", "worst10", "nsd"]
    clean = summary.iloc[0]
    assert clean["avg"] == pytest.approx(0.87) and clean["worst"] == clean["worst10"] == 0.6
    acc = np.array([0.9] * 9 + [0.6])
    assert clean["nsd"] == pytest.approx(acc.std() / acc.mean())
    assert np.isnan(summary.iloc[1]["nsd"])
    table = format_table(summary)
    assert table.loc["Clean", "Avg. (%)"] == "87.00" and table.loc["Clean", "Worst (%)"] == "60.00"
    assert table.loc["Clean", "NSD"] == f"{acc.std() / acc.mean():.3f}"
    with pytest.raises(ConfigError, match="columns"):
        summarize(per_class.drop(columns="count"))


def test_attack_confusion(model, split):
    clean = attack_confusion(model, split, Clean(model), num_classes=4, batch_size=50)
    pred = model(_float(split)).argmax(1).numpy()
    expected = np.zeros((4, 4), dtype=np.int64)
    np.add.at(expected, (split.labels.numpy(), pred), 1)
    np.testing.assert_array_equal(clean, expected)
    adv = attack_confusion(model, split, PGD(model, EPS, ALPHA, 5), 4, normalize=True)
    np.testing.assert_allclose(adv.sum(axis=1), 1.0)
    assert np.trace(adv) < np.trace(clean / 30)


def test_targeted_success_matrix(model, split):
    s = targeted_success_matrix(model, split, 0.3, 0.05, 10, num_classes=4, per_class=5)
    assert s.shape == (4, 4) and np.isnan(np.diag(s)).all()
    off = s[~np.eye(4, dtype=bool)]
    assert ((off >= 0) & (off <= 1)).all() and off.mean() > 0.5
    weak = targeted_success_matrix(model, split, 0.01, 0.005, 2, num_classes=4, per_class=5)
    assert np.nanmean(weak) < np.nanmean(s)
