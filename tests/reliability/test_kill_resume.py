"""SIGKILL a `ferd distill` subprocess at several points, rerun it, and get exactly the uninterrupted result.

Kill points (FERD_FAULT: the test-only hook of tests/reliability/faults, see FAULTS.md):
  1. half-way through writing the epoch-2 checkpoint's temporary file            (mid_write:checkpoint.pt:2)
  2. after renaming a new checkpoint, before its checksum file is renamed         (before_checksum:checkpoint.pt:1)
  3. from outside, at whatever point the run has reached right after a checkpoint (os.kill SIGKILL)
  4. half-way through writing final.pt                                            (mid_write:final.pt:1)
then a clean rerun. The final student, history and the checkpoint's contents must equal the reference run's.
"""
from __future__ import annotations

import os
import signal

import torch

from ferd.toolkit import artifacts

from .support import distill_args, history_without_lr, run_cli, run_dir, seed_teacher, spawn, wait_for, weights


def _epoch(ckpt) -> int:
    return artifacts.load_torch(ckpt)["epoch"]


def test_sigkill_at_four_points_then_resume_equals_uninterrupted(tmp_path, teacher_root, reference):
    root = seed_teacher(tmp_path / "store", teacher_root)
    args = distill_args(root)

    # 1. killed while the epoch-2 checkpoint is half written: the epoch-1 checkpoint stays valid
    p = run_cli(args, FERD_FAULT="mid_write:checkpoint.pt:2")
    assert p.returncode == -signal.SIGKILL, p.stderr
    rd = run_dir(root)
    ckpt = rd / "checkpoint.pt"
    assert _epoch(ckpt) == 1
    assert list(rd.glob(".checkpoint.pt.*.tmp")), "the half-written temporary file should be left behind"
    assert not (rd / "final.pt").exists()

    # 2. resumes from epoch 1 (removing the stale temporary file), then is killed between the rename of the
    #    epoch-2 checkpoint and that of its checksum: data and checksum disagree, so it must not be trusted
    p = run_cli(args, FERD_FAULT="before_checksum:checkpoint.pt:1")
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert not artifacts.is_valid(ckpt)
    left = [f.name for f in rd.glob(".*.tmp")]  # step 1's partial file was removed; the pending checksum remains
    assert left and all(n.startswith(".checkpoint.pt.sha256.") for n in left), left

    # 3. the rerun detects the mismatch, says so naming the file, starts over; we SIGKILL it from outside as
    #    soon as its first checkpoint lands (somewhere in epoch 2 or in the next checkpoint's write)
    old_sum = (rd / "checkpoint.pt.sha256").read_text()
    log = tmp_path / "run3.log"
    proc = spawn(args, log)
    try:
        wait_for(lambda: (rd / "checkpoint.pt.sha256").read_text() != old_sum or proc.poll() is not None,
                 what="a new checkpoint")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(60)
    assert proc.returncode == -signal.SIGKILL, log.read_text()  # killed by us, not ended by itself
    text = log.read_text()
    assert "starting over" in text and str(ckpt) in text and "checksum mismatch" in text, text

    # 4. resumes, finishes the epochs, is killed while final.pt is half written
    p = run_cli(args, FERD_FAULT="mid_write:final.pt:1")
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert _epoch(ckpt) == 4 and not (rd / "final.pt").exists()
    assert (rd / "config.json").exists()  # written before final.pt, which marks the run finished

    # 5. a clean rerun only writes final.pt
    p = run_cli(args)
    assert p.returncode == 0, p.stderr
    final = artifacts.load_torch(rd / "final.pt")
    assert torch.equal(weights(final["student"]), weights(reference["student"]))
    assert history_without_lr(final["history"]).equals(history_without_lr(reference["history"]))
    got, want = artifacts.load_torch(ckpt), artifacts.load_torch(reference["run_dir"] / "checkpoint.pt")
    assert torch.equal(weights(got["optimizer"]["state"][0]), weights(want["optimizer"]["state"][0]))
    assert torch.equal(got["pool"]["x"], want["pool"]["x"]) and torch.equal(got["rng"]["torch"], want["rng"]["torch"])
    assert not list(rd.glob(".*.tmp"))
    assert rd.name == reference["run_dir"].name  # same config hash
