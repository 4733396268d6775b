"""The `cpu` profile's teacher ships with the package: its bytes match the manifest, it is what the profile loads,
and it is the strong teacher issue 10 asks for (spot-checked here; the full test-set table is results/)."""
from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch

from ferd.config import make_config
from ferd.errors import CheckpointError
from ferd.method import teachers
from ferd.toolkit.data import load_split, stratified_subset


def test_every_shipped_checkpoint_matches_its_sha256():
    manifest = teachers.shipped_teachers()
    assert manifest, "ferd/shipped/teachers.json lists no teacher"
    for key, entry in manifest.items():
        data = (teachers.SHIPPED_DIR / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["file"]
        assert entry["command"].startswith("python -m ferd train-teacher") and entry["git_commit"]


def test_cpu_profile_loads_the_shipped_teacher(tmp_path):
    cfg = make_config("cpu")
    path = teachers.shipped_teacher_path(cfg)
    assert path is not None, f"no shipped teacher for the cpu profile's key {cfg.key('teacher')}"
    store_before = list(tmp_path.iterdir())
    model, history = teachers.train_teacher(cfg, teachers.artifacts.ArtifactStore(tmp_path), progress=False)
    assert list(tmp_path.iterdir()) == store_before  # nothing trained, nothing written
    assert len(history) == cfg.teacher.epochs and {"acc_clean", "worst_pgd"} <= set(history.columns)
    split = stratified_subset(load_split("fashion_mnist", "test"), 20)
    with torch.no_grad():
        pred = model(split.float_images(torch.arange(len(split)))).argmax(1)
    assert (pred == split.labels).float().mean() >= 0.8  # a weak or wrong checkpoint fails here


def test_a_tampered_checkpoint_is_refused(tmp_path, monkeypatch):
    cfg = make_config("cpu")
    entry = teachers.shipped_teachers()[cfg.key("teacher")]
    shutil.copy(teachers.SHIPPED_DIR / teachers.MANIFEST, tmp_path / teachers.MANIFEST)
    data = bytearray((teachers.SHIPPED_DIR / entry["file"]).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / entry["file"]).write_bytes(bytes(data))
    monkeypatch.setattr(teachers, "SHIPPED_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="sha256"):
        teachers.train_teacher(cfg, progress=False)


def test_other_recipes_are_not_served_the_shipped_teacher():
    cfg = make_config("cpu", overrides={"teacher.trades_beta": 3.0})
    assert teachers.shipped_teacher_path(cfg) is None
    assert json.loads((teachers.SHIPPED_DIR / teachers.MANIFEST).read_text())  # still there for the profile
