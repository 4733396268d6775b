"""A truncated, corrupted or unchecksummed artifact is detected, named in a warning, and recomputed; never loaded."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch

from ferd.errors import CheckpointError
from ferd.method.distill import Distiller
from ferd.toolkit import artifacts

from .support import history_without_lr, tiny_config, weights


def _damage(path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "bitflip":
        path.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    elif how == "no_checksum":
        path.with_name(path.name + ".sha256").unlink()


@pytest.fixture
def finished(tmp_path, reference):
    """A copy of the finished reference run directory in a fresh store."""
    store = artifacts.ArtifactStore(tmp_path)
    dst = store.root / "run" / reference["run_dir"].name
    shutil.copytree(reference["run_dir"], dst, ignore=shutil.ignore_patterns("*.lock"))
    return store, dst


@pytest.mark.parametrize("how", ["truncated", "bitflip", "no_checksum"])
def test_damaged_final_is_named_and_finished_again(finished, smoke_teacher, reference, how):
    store, rd = finished
    _damage(rd / "final.pt", how)
    with pytest.raises(CheckpointError, match="final.pt"):
        artifacts.load_torch(rd / "final.pt")
    with pytest.warns(UserWarning, match=r"finishing the run again from its checkpoint: .*final\.pt"):
        res = Distiller(tiny_config(), teacher=smoke_teacher, store=store, progress=False).run()
    assert torch.equal(weights(res.student.state_dict()), weights(reference["student"]))
    assert artifacts.is_valid(rd / "final.pt")


def test_damaged_checkpoint_is_named_and_the_run_starts_over(tmp_path, smoke_teacher, reference):
    """Only the epoch-2 checkpoint exists and it is corrupt: a warning names it, training restarts at epoch 1."""
    store = artifacts.ArtifactStore(tmp_path)
    d = Distiller(tiny_config(), teacher=smoke_teacher, store=store, progress=False)
    for epoch in (1, 2):
        d.train_epoch(epoch)
        d.epoch = epoch
        d._save_checkpoint(d.run_dir / "checkpoint.pt")
    _damage(d.run_dir / "checkpoint.pt", "bitflip")
    with pytest.warns(UserWarning, match=r"starting over: .*checkpoint\.pt is corrupt or truncated"):
        res = Distiller(tiny_config(), teacher=smoke_teacher, store=store, progress=False).run()
    assert torch.equal(weights(res.student.state_dict()), weights(reference["student"]))
    assert history_without_lr(res.history.to_dict("records")).equals(history_without_lr(reference["history"]))


def test_checkpoint_of_another_architecture_is_named_not_half_loaded(tmp_path, smoke_teacher, reference):
    """A checkpoint written by other model code (same config hash) is refused before any weight is copied."""
    store = artifacts.ArtifactStore(tmp_path)
    d = Distiller(tiny_config(), teacher=smoke_teacher, store=store, progress=False)
    d.train_epoch(1)
    d.epoch = 1
    state = d._state()
    state["student"] = {k: (v[:-1] if v.dim() else v) if k.endswith("linear.weight") else v
                        for k, v in state["student"].items()}
    artifacts.save_torch(d.run_dir / "checkpoint.pt", state)
    with pytest.warns(UserWarning, match=r"starting over: .*checkpoint\.pt does not fit this code's student"):
        res = Distiller(tiny_config(), teacher=smoke_teacher, store=store, progress=False).run()
    assert torch.equal(weights(res.student.state_dict()), weights(reference["student"]))


@pytest.mark.parametrize("how", ["truncated", "no_checksum"])
def test_damaged_teacher_is_named_and_retrained(tmp_path, teacher_root, smoke_teacher, how):
    from ferd.config import make_config
    from ferd.method.teachers import train_teacher

    shutil.copytree(teacher_root / "teacher", tmp_path / "teacher", ignore=shutil.ignore_patterns("*.lock"))
    final = next((tmp_path / "teacher").glob("*/teacher.pt"))
    _damage(final, how)
    with pytest.warns(UserWarning, match=r"retraining the teacher: .*teacher\.pt"):
        model, _ = train_teacher(make_config("smoke"), artifacts.ArtifactStore(tmp_path), progress=False)
    # its per-epoch checkpoint was intact, so "retraining" resumes after the last epoch: same weights
    assert torch.equal(weights(model.state_dict()), weights(smoke_teacher.state_dict()))
    assert artifacts.is_valid(final)


def test_damaged_result_file_is_named_and_recomputed(tmp_path):
    path = tmp_path / "eval" / "k" / "pgd.csv"
    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"class_index": [0, 1], "accuracy": [0.5, 0.25]})

    first = artifacts.get_or_compute(path, compute, artifacts.save_frame, artifacts.load_frame)
    artifacts.get_or_compute(path, compute, artifacts.save_frame, artifacts.load_frame)
    assert len(calls) == 1
    path.write_bytes(path.read_bytes().replace(b"0.25", b"0.99"))  # a plausible edit: still valid CSV
    with pytest.warns(UserWarning, match=r"recomputing: .*pgd\.csv is corrupt or truncated"):
        again = artifacts.get_or_compute(path, compute, artifacts.save_frame, artifacts.load_frame)
    assert len(calls) == 2 and again.equals(first)
