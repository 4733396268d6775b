"""The synthetic data pool: every kept generator batch with its sampled labels, drawn in shuffled passes.

The pool is never pruned (spec 5.5): after epoch e it holds e*B images. The student draws batches from shuffled
passes over the whole pool. Storage can be float32 (default), float16 or uint8 to save memory (spec 5.11,
`pool_dtype`); batches always come back as float32 in [0, 1]. `state_dict` holds everything resume needs except
the caller's torch.Generator, whose state the caller checkpoints with its other RNG states.
"""
from __future__ import annotations

from typing import Any

import torch

from ferd.errors import ConfigError

POOL_DTYPES = {"float32": torch.float32, "float16": torch.float16, "uint8": torch.uint8}


class SyntheticPool:
    """In-memory pool of synthetic images [N, C, H, W] and labels [N] (spec 5.5).

    Batches: a pass is a random permutation of the pool as it is when the pass starts. Appends never interrupt
    the running pass; the next pass permutes the whole pool, new samples included. Batches are always full: a
    batch that reaches the end of a pass is completed from the start of a fresh pass. (With N a multiple of the
    batch size, the release's case, no batch crosses a pass.) `new_pass()` ends the current pass early; call it
    at each epoch's student stage to mimic the release, which re-creates its shuffled DataLoader every epoch.
    Args:
        num_classes: C, for `label_counts`.
        dtype: storage dtype, "float32" | "float16" | "uint8" (x * 255 rounded).
        device: where the storage lives and batches are returned.
    """

    def __init__(self, num_classes: int, dtype: str = "float32", device: str | torch.device = "cpu"):
        if dtype not in POOL_DTYPES:
            raise ConfigError("pool_dtype", dtype, list(POOL_DTYPES))
        if num_classes < 1:
            raise ConfigError("num_classes", num_classes, "an integer >= 1")
        self.num_classes, self.dtype, self.device = num_classes, dtype, torch.device(device)
        self._x: torch.Tensor | None = None  # [capacity, C, H, W], storage dtype
        self._y = torch.empty(0, dtype=torch.int64, device=self.device)  # [capacity]
        self._n = 0
        self._perm = torch.empty(0, dtype=torch.int64)  # current pass, CPU
        self._pos = 0

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"SyntheticPool(n={self._n}, num_classes={self.num_classes}, dtype={self.dtype!r})"

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to(self.device, torch.float32)
        if self.dtype == "uint8":
            return (x * 255.0).round().clamp_(0, 255).to(torch.uint8)
        return x.to(POOL_DTYPES[self.dtype])

    def _decode(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() / 255.0 if self.dtype == "uint8" else x.float()

    def append(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add a batch x [B, C, H, W] in [0, 1] with its sampled labels y [B] (int)."""
        if x.dim() != 4 or y.shape != (x.shape[0],):
            raise ConfigError("pool batch", (tuple(x.shape), tuple(y.shape)), "x [B, C, H, W] with y [B]")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ConfigError("y", (int(y.min()), int(y.max())), f"labels in [0, {self.num_classes - 1}]")
        if self._x is not None and x.shape[1:] != self._x.shape[1:]:
            raise ConfigError("x", tuple(x.shape), f"images shaped {tuple(self._x.shape[1:])} like the pool's")
        need = self._n + x.shape[0]
        if self._x is None or need > self._x.shape[0]:
            cap = max(need, 2 * (0 if self._x is None else self._x.shape[0]))  # amortised growth
            new_x = torch.empty((cap, *x.shape[1:]), dtype=POOL_DTYPES[self.dtype], device=self.device)
            new_y = torch.empty(cap, dtype=torch.int64, device=self.device)
            if self._x is not None:
                new_x[: self._n] = self._x[: self._n]
                new_y[: self._n] = self._y[: self._n]
            self._x, self._y = new_x, new_y
        self._x[self._n: need] = self._encode(x)
        self._y[self._n: need] = y.detach().to(self.device, torch.int64)
        self._n = need

    def new_pass(self) -> None:
        """End the current pass; the next batch starts a fresh permutation of the whole pool."""
        self._perm, self._pos = torch.empty(0, dtype=torch.int64), 0

    def next_batch(self, batch_size: int, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """The next `batch_size` samples of the shuffled passes: (x float32 [b, C, H, W] in [0, 1], y int64 [b]).

        `generator` (CPU) seeds each new pass's permutation.
        """
        if self._n == 0:
            raise ConfigError("pool", "empty", "at least one appended batch before next_batch")
        if batch_size < 1:
            raise ConfigError("batch_size", batch_size, "an integer >= 1")
        parts, need = [], batch_size
        while need > 0:  # runs once, or a few times when a batch crosses passes
            if self._pos >= self._perm.numel():
                self._perm, self._pos = torch.randperm(self._n, generator=generator), 0
            take = self._perm[self._pos: self._pos + need]
            parts.append(take)
            self._pos += take.numel()
            need -= take.numel()
        idx = torch.cat(parts).to(self.device)
        return self._decode(self._x[idx]), self._y[idx].clone()

    def label_counts(self) -> torch.Tensor:
        """Number of pool samples per class, int64 [num_classes]."""
        return torch.bincount(self._y[: self._n].cpu(), minlength=self.num_classes)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All samples as (x float32 [N, C, H, W], y [N]), e.g. to write the pool to disk or plot it."""
        if self._x is None:
            raise ConfigError("pool", "empty", "at least one appended batch")
        return self._decode(self._x[: self._n]), self._y[: self._n].clone()

    def state_dict(self) -> dict[str, Any]:
        """Everything to resume: stored samples (storage dtype), labels, the pass permutation and position."""
        return {"num_classes": self.num_classes, "dtype": self.dtype,
                "x": None if self._x is None else self._x[: self._n].cpu().clone(),
                "y": self._y[: self._n].cpu().clone(), "perm": self._perm.clone(), "pos": self._pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`; the pool's num_classes and dtype must match."""
        for key in ("num_classes", "dtype"):
            if state[key] != getattr(self, key):
                raise ConfigError(f"pool state {key}", state[key], f"{getattr(self, key)!r} like this pool")
        x = state["x"]
        self._x = None if x is None else x.to(self.device).clone()
        self._y = state["y"].to(self.device).clone()
        self._n = int(self._y.numel())
        self._perm, self._pos = state["perm"].clone(), int(state["pos"])


def agreement_columns(prefix: str, agree: torch.Tensor, y: torch.Tensor, num_classes: int) -> dict[str, float]:
    """`prefix` (overall), `prefix_worst` (lowest class; classes without samples are skipped) and `prefix_<c>`."""
    counts = torch.bincount(y, minlength=num_classes).float()
    hits = torch.bincount(y, weights=agree, minlength=num_classes).float()
    per_class = torch.where(counts > 0, hits / counts.clamp(min=1), torch.full_like(counts, float("nan")))
    present = per_class[counts > 0]
    return {prefix: float(agree.mean()) if len(agree) else float("nan"),
            f"{prefix}_worst": float(present.min()) if len(present) else float("nan"),
            **{f"{prefix}_{c}": float(v) for c, v in enumerate(per_class)}}
