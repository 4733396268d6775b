"""Same seed, same numbers; another seed, other numbers (CPU, in-process; cross-process equality is shown by
test_kill_resume and test_concurrency, whose subprocess results equal the in-process reference)."""
from __future__ import annotations

import pandas as pd
import torch

from ferd.method.methods import run
from ferd.toolkit import artifacts

from .support import tiny_config, weights


def _run(tmp_path, name, teacher, **overrides):
    return run(tiny_config(**overrides), teacher=teacher, store=artifacts.ArtifactStore(tmp_path / name),
               progress=False)


def test_same_seed_same_weights_and_metrics_other_seed_differs(tmp_path, smoke_teacher, reference):
    again = _run(tmp_path, "again", smoke_teacher)
    assert torch.equal(weights(again.student.state_dict()), weights(reference["student"]))
    pd.testing.assert_frame_equal(again.history, pd.DataFrame(reference["history"]), check_exact=True)
    other = _run(tmp_path, "seed1", smoke_teacher, seed=1)
    assert not torch.equal(weights(other.student.state_dict()), weights(reference["student"]))
    ref = pd.DataFrame(reference["history"])
    for col in ("gen_total", "student_loss", "D_0", "p_0"):
        assert not other.history[col].equals(ref[col]), col


def test_teacher_training_is_deterministic(tmp_path):
    from ferd.config import make_config
    from ferd.method.teachers import train_teacher

    def teacher(name, seed):
        cfg = make_config("smoke", overrides={"teacher.train_size": 64, "seed": seed})
        model, history = train_teacher(cfg, artifacts.ArtifactStore(tmp_path / name), progress=False)
        return weights(model.state_dict()), history

    (w0, h0), (w0b, h0b), (w1, h1) = teacher("a", 0), teacher("b", 0), teacher("c", 1)
    assert torch.equal(w0, w0b) and h0.equals(h0b)
    assert not torch.equal(w0, w1) and not h0["train_loss"].equals(h1["train_loss"])
