"""A finished run, where runs live in the store, and the key suffix of notebook-supplied pieces."""
from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import torch.nn as nn

from ferd.config import Config
from ferd.method.pool import SyntheticPool
from ferd.toolkit import artifacts
from ferd.toolkit.models import create_model


@dataclass
class DistillResult:
    """A finished run: the final student (eval mode), its history and where its artifacts live."""

    cfg: Config
    student: nn.Module
    history: pd.DataFrame
    run_dir: Path
    key: str
    best_clean_state: dict[str, torch.Tensor] | None = None

    def pool(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The run's synthetic pool (x in [0, 1], sampled labels), read from its last checkpoint."""
        pool = SyntheticPool(self.cfg.num_classes, dtype=self.cfg.distill.pool_dtype)
        pool.load_state_dict(artifacts.load_torch(self.run_dir / "checkpoint.pt")["pool"])
        return pool.tensors()

    def best_clean_student(self) -> nn.Module:
        """The checkpoint with the best clean tracking accuracy (spec 2.4; reported beside the final one)."""
        model = create_model(self.cfg.student, num_classes=self.cfg.num_classes)
        model.load_state_dict(self.best_clean_state or self.student.state_dict())
        return model.eval()


def run_dir(cfg: Config, store: artifacts.ArtifactStore, key: str) -> Path:
    """Where a run lives in the store: `run/<student>-<key>` (`key`: `ferd.method.methods.run_key(cfg)`)."""
    return store.dir("run", f"{cfg.student}-{key}")


def custom_suffix(*pieces: Callable | None) -> str:
    """Key suffix for notebook-supplied callables: a hash of their source, so an edited rule is a new run."""
    parts = []
    for piece in pieces:
        if piece is None:
            continue
        try:
            parts.append(inspect.getsource(piece))
        except (OSError, TypeError):  # defined interactively without source: fall back to its name
            parts.append(getattr(piece, "__qualname__", repr(piece)))
    return "-custom-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:8] if parts else ""
