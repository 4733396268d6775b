"""A NaN or infinite loss stops training with a TrainingError naming epoch, step and loss term; the last good
checkpoint (previous epoch) stays intact and loadable, and a fixed rerun resumes from it."""
from __future__ import annotations

import math

import pytest
import torch

from ferd.errors import ConfigError, TrainingError
from ferd.method.distill import Distiller
from ferd.toolkit import artifacts

from .support import tiny_config, weights


def _identity(x, target):
    return x


class _NaNAt:
    """A `student_attack` factory: NaN images at one (epoch, step), the clean images elsewhere."""

    def __init__(self, distiller_seed, epoch: int, step: int):
        self.bad_seed = distiller_seed(epoch, step)

    def __call__(self, net, eps, alpha, steps, seed):
        if seed != self.bad_seed:
            return _identity
        return lambda x, target: torch.full_like(x, float("nan"))


def _checkpoint(d: Distiller) -> dict:
    return artifacts.load_torch(d.run_dir / "checkpoint.pt")


def test_nan_student_loss_names_epoch_step_term_and_keeps_last_checkpoint(tmp_path, smoke_teacher):
    store = artifacts.ArtifactStore(tmp_path)
    probe = Distiller(tiny_config(), teacher=smoke_teacher, store=store, progress=False)
    attack = _NaNAt(probe._seed, epoch=3, step=0)
    d = Distiller(tiny_config(), teacher=smoke_teacher, store=store, student_attack=attack, progress=False)
    with pytest.raises(TrainingError) as err:
        d.run()
    msg = str(err.value)
    assert "at epoch 3, step 0" in msg and "'student_loss' = nan" in msg and "'student_adv' = nan" in msg, msg
    assert "student_clean" not in msg  # the clean term is finite and not blamed
    assert f"the last good state is {d.run_dir / 'checkpoint.pt'} (epoch 2)" in msg
    ck = _checkpoint(d)  # intact (checksum verified) and loadable
    assert ck["epoch"] == 2 and len(ck["rows"]) == 2
    assert torch.isfinite(weights(ck["student"])).all()
    assert not (d.run_dir / "final.pt").exists()
    # the same run with the fault removed (same callable, so the same run directory) resumes from epoch 2
    attack.bad_seed = None
    fixed = Distiller(tiny_config(), teacher=smoke_teacher, store=store, student_attack=attack, progress=False)
    assert fixed.run_dir == d.run_dir
    res = fixed.run()
    assert list(res.history["epoch"]) == [1, 2, 3, 4]
    assert all(math.isfinite(v) for v in res.history["student_loss"].iloc[1:])


def test_nan_in_the_first_epoch_says_there_is_no_checkpoint(tmp_path, smoke_teacher):
    store = artifacts.ArtifactStore(tmp_path)
    probe = Distiller(tiny_config(warmup=0), teacher=smoke_teacher, store=store, progress=False)
    attack = _NaNAt(probe._seed, epoch=1, step=1)
    d = Distiller(tiny_config(warmup=0), teacher=smoke_teacher, store=store, student_attack=attack, progress=False)
    with pytest.raises(TrainingError, match=r"at epoch 1, step 1 .*no epoch had finished, so there is no checkpoint"):
        d.run()
    assert not (d.run_dir / "checkpoint.pt").exists()


def test_nan_generator_loss_is_caught_in_the_generation_stage(tmp_path, smoke_teacher, monkeypatch):
    """A NaN uniformity (FAE) term makes every generator step NaN: the kept batch's loss parts are NaN, not 0."""
    import ferd.method.fae

    real = ferd.method.fae.uniformity_loss
    calls = []

    def uniformity_nan_from_epoch_2(*a, **k):
        calls.append(1)
        out = real(*a, **k)
        return out * float("nan") if len(calls) > 1 else out  # n_g = 1: one call per epoch

    monkeypatch.setattr(ferd.method.fae, "uniformity_loss", uniformity_nan_from_epoch_2)
    d = Distiller(tiny_config(), teacher=smoke_teacher, store=artifacts.ArtifactStore(tmp_path), progress=False)
    with pytest.raises(TrainingError, match=r"'gen_uni' = nan.*'gen_total' = nan at epoch 2, step -1 "
                                            r"\(generation stage\).*checkpoint\.pt \(epoch 1\)"):
        d.run()
    ck = _checkpoint(d)
    assert ck["epoch"] == 1 and len(ck["pool"]["y"]) == 16  # the saved pool holds epoch 1's batch only


def test_nan_class_weights_from_a_custom_rule_are_refused(tmp_path, smoke_teacher):
    def broken_rule(D):
        return torch.full_like(D, float("nan"))

    d = Distiller(tiny_config(), teacher=smoke_teacher, store=artifacts.ArtifactStore(tmp_path),
                  class_weight_rule=broken_rule, progress=False)
    with pytest.raises(ConfigError, match=r"class_weight_rule='broken_rule' is not allowed; expected a rule "
                                          r"returning a probability vector shaped like D"):
        d.run()


def test_nan_teacher_loss_stops_teacher_training(tmp_path, monkeypatch):
    import ferd.method.teachers
    from ferd.config import make_config

    monkeypatch.setattr(ferd.method.teachers, "_adversarial_loss", lambda cfg, model, x, y, seed:
                        model(x).sum() * float("nan"))
    cfg = make_config("smoke", overrides={"teacher.train_size": 64})
    with pytest.raises(TrainingError, match=r"loss term 'teacher_loss' \(pgd_at\) is nan at epoch 1, step 0; "
                                            r"the last good state is none"):
        ferd.method.teachers.train_teacher(cfg, artifacts.ArtifactStore(tmp_path), progress=False)
    assert not list(tmp_path.rglob("teacher.pt"))
