"""Helpers of the reliability suite: a tiny smoke schedule, CLI subprocesses, a reference run.

Every run here is the `smoke` profile shrunk further (`TINY`: 4 epochs, one generator step, batch 16, no
sample grids) so that a whole `ferd distill` subprocess costs a few CPU seconds, most of it importing torch.
Subprocesses and the in-process reference both use 2 intra-op threads, so their floating point agrees.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
TINY = {"epochs": 4, "n_g": 1, "ib_steps": 2, "batch_size": 16, "snapshot_every": 100, "track_per_class": 2}
TINY_ARGS = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]


def tiny_config(**overrides):
    from ferd.config import make_config

    return make_config("smoke", "ferd", {**TINY, **overrides})


def env(**extra: str) -> dict[str, str]:
    """The environment of a `ferd` subprocess: the repository on the path, 2 threads, no fault unless asked."""
    e = {k: v for k, v in os.environ.items() if k not in ("FERD_FAULT", "FERD_ARTIFACTS")}
    path = [str(REPO)] + ([str(Path(__file__).with_name("faults"))] if extra.get("FERD_FAULT") else [])
    e.update(OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="2", PYTHONPATH=os.pathsep.join(path), **extra)
    return e


def ferd_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "ferd", *args]


def distill_args(root: Path, *more: str) -> list[str]:
    return ferd_cmd("distill", "--profile", "smoke", "--artifacts", str(root), "--quiet", *TINY_ARGS, *more)


def run_cli(args: list[str], timeout: float = 240, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, env=env(**extra_env), capture_output=True, text=True, timeout=timeout)


def spawn(args: list[str], log: Path, **extra_env: str) -> subprocess.Popen:
    """Start a subprocess whose stdout and stderr go to `log` (readable while it runs)."""
    with open(log, "w") as fh:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(args, cwd=REPO, env=env(**extra_env), stdout=fh, stderr=subprocess.STDOUT)


def wait_for(cond, timeout: float = 180, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def seed_teacher(root: Path, teacher_root: Path) -> Path:
    """Copy the session's finished smoke teacher into a fresh store (so a subprocess loads it)."""
    src = teacher_root / "teacher"
    shutil.copytree(src, Path(root) / "teacher", ignore=shutil.ignore_patterns("*.lock"))
    return Path(root)


def run_dir(root: Path) -> Path:
    dirs = sorted((Path(root) / "run").iterdir())
    assert len(dirs) == 1, dirs
    return dirs[0]


def weights(state: dict) -> torch.Tensor:
    return torch.cat([v.detach().flatten().double() for v in state.values() if v.dtype.is_floating_point])


def history_without_lr(rows) -> "object":
    import pandas as pd

    return pd.DataFrame(rows).drop(columns="lr")
