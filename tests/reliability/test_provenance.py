"""Artifacts record the config, seed, library version and git commit that made them."""
from __future__ import annotations

import json
import subprocess

import ferd
from ferd.config import config_from_dict
from ferd.method.methods import run_key
from ferd.toolkit import artifacts

from .support import REPO, tiny_config

FIELDS = {"config", "seed", "ferd_version", "git_commit", "torch_version", "created"}


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)


def _plain(d: dict) -> dict:
    return json.loads(json.dumps(d))


def _check(prov: dict, cfg) -> None:
    import torch

    assert FIELDS <= set(prov), prov.keys()
    assert _plain(prov["config"]) == _plain(cfg.to_dict())  # config.json holds lists where final.pt has tuples
    assert prov["seed"] == cfg.seed
    assert prov["ferd_version"] == ferd.__version__ and prov["torch_version"] == torch.__version__
    sha, _, dirty = prov["git_commit"].partition("+")
    assert sha != "unknown" and dirty in ("", "dirty"), prov["git_commit"]
    # a commit of this repository at or before HEAD (HEAD may move while the suite runs)
    assert _git("merge-base", "--is-ancestor", sha, "HEAD").returncode == 0, prov["git_commit"]
    assert len(_git("rev-parse", "--verify", f"{sha}^{{commit}}").stdout.strip()) == 40


def test_run_artifacts_record_their_provenance(reference):
    cfg, rd = tiny_config(), reference["run_dir"]
    meta = artifacts.load_json(rd / "config.json")
    _check(meta, cfg)
    assert meta["key"] == reference["key"] and rd.name.endswith(meta["key"])
    assert run_key(config_from_dict(meta["config"])) == meta["key"]  # the record rebuilds the same run
    _check(reference["final"]["provenance"], cfg)
    ckpt = artifacts.load_torch(rd / "checkpoint.pt")
    assert ckpt["config"] == cfg.to_dict()  # resume rebuilds from it


def test_teacher_artifact_records_its_provenance(teacher_root):
    from ferd.config import make_config

    cfg = make_config("smoke", "ferd")
    blob = artifacts.load_torch(teacher_root / "teacher" / cfg.key("teacher") / "teacher.pt")
    _check(blob["provenance"], cfg)
    assert config_from_dict(blob["provenance"]["config"]).key("teacher") == cfg.key("teacher")
