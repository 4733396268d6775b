"""Checkpoints of the training loop: what a run saves after every epoch, and how it resumes from it.

A mixin of `ferd.method.distill.Distiller`: the state is everything random or learnt (student, optimiser,
generator, pool, class weights, history, RNG), so a resumed run ends exactly as an uninterrupted one.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from ferd.errors import CheckpointError
from ferd.method.runs import DistillResult
from ferd.method.teachers import state_mismatch
from ferd.toolkit import artifacts
from ferd.toolkit.images import save_image_grid
from ferd.toolkit.runtime import rng_state, set_rng_state


class Checkpointing:
    """Save, resume and finish a `Distiller` run (attributes are the Distiller's)."""

    def _state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "student": self.student.state_dict(), "optimizer": self.opt.state_dict(),
                "generator": self.G.state_dict() if self.G is not None else None,
                "pool": self.pool.state_dict() if self.pool is not None else None, "p": self.p, "D": self.D,
                "rows": self.rows, "best_clean": self.best_clean, "best_state": self.best_state,
                "rng": rng_state(), "extra": self.extra_state(), "config": self.cfg.to_dict(),
                "agree": (self.agree, self.agree_y),
                # the released variant's probe updates the teacher's BN statistics (D4): keep them
                "teacher": self.teacher.state_dict() if "probe" in self.needs and self.d.probe_teacher_mode == "train_leak" else None}

    def _save_checkpoint(self, path: Path) -> None:
        if not self._is_main:
            return
        artifacts.save_torch(path, self._state())
        if self.epoch % self.d.snapshot_every == 0 and self.pool is not None and len(self.pool):
            x, _ = self.pool.tensors()
            save_image_grid(x[-min(64, len(x)):], self.run_dir / f"samples_epoch{self.epoch:03d}.png")

    def _resume(self, path: Path) -> None:
        if not path.exists():
            return
        try:
            s = artifacts.load_torch(path)
            for name, module in (("student", self.student), ("generator", self.G)):  # check before changing any
                if module is None:
                    continue
                why = state_mismatch(module, s[name])
                if why:
                    raise CheckpointError(f"{path} does not fit this code's {name} (model code changed?): {why}")
        except CheckpointError as err:
            warnings.warn(f"starting over: {err}", stacklevel=2)
            return
        self.epoch = s["epoch"]
        self.student.load_state_dict(s["student"])
        self.opt.load_state_dict(s["optimizer"])
        if self.G is not None:
            self.G.load_state_dict(s["generator"])
        if self.pool is not None:
            self.pool.load_state_dict(s["pool"])
        self.p, self.D, self.rows = s["p"], s["D"], s["rows"]
        self.best_clean, self.best_state = s["best_clean"], s["best_state"]
        self.load_extra_state(s["extra"])
        self.agree, self.agree_y = s.get("agree", (self.agree, self.agree_y))
        if s.get("teacher") is not None:
            self.teacher.load_state_dict(s["teacher"])
        set_rng_state(s["rng"])

    def _result_from(self, path: Path) -> DistillResult:
        s = artifacts.load_torch(path)
        why = state_mismatch(self.student, s["student"])
        if why:  # checked first: a failed load_state_dict would leave the student half overwritten
            raise CheckpointError(f"{path} does not fit this code's student (model code changed?): {why}")
        self.student.load_state_dict(s["student"])
        return DistillResult(self.cfg, self.student.eval(), pd.DataFrame(s["history"]), self.run_dir, self.key,
                             s["best_clean"])
