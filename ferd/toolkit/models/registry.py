"""Model registry: name -> constructor plus the metadata FERD needs (spec §4).

Every registered model is a `FerdModel`: `features(x)` returns the teacher feature map Z at the split
point l of spec §4.2 and `head(z)` the logits, with `forward(x) == head(features(x))`. Models take raw
[0, 1] images; any input normalisation lives inside the model as buffers (spec §1, threat model).

    from ferd.toolkit.models import create_model, list_models
    teacher = create_model("fmnist-cnn")            # num_classes defaults to the entry's
    z = teacher.features(x)                         # [B, 128, 7, 7]
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from ferd.errors import ConfigError

StateDict = dict[str, torch.Tensor]


class InputNormalization(nn.Module):
    """(x - mean) / std with per-channel buffers; not saved in the state dict, so checkpoints of
    models trained without normalisation (the released WRN uses mean 0, std 1) load unchanged."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ConfigError("std", tuple(std), f"{len(mean)} positive values, one per channel of mean")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def make_normalization(mean: Sequence[float] | None, std: Sequence[float] | None) -> nn.Module:
    """`InputNormalization` when mean/std are given, else identity (the default: spec §3 uses none)."""
    if mean is None and std is None:
        return nn.Identity()
    if mean is None or std is None:
        raise ConfigError("mean/std", (mean, std), "both set or both None")
    return InputNormalization(mean, std)


class FerdModel(nn.Module):
    """Base class: subclasses write `features` and `head`; `forward` is their composition (spec §4.2)."""

    def features(self, x: torch.Tensor) -> torch.Tensor:  # [B,C,H,W] in [0,1] -> Z
        raise NotImplementedError

    def head(self, z: torch.Tensor) -> torch.Tensor:  # Z -> logits [B, num_classes]
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about one model name (timm `_registry`, RobustBench `model_zoo`)."""

    name: str
    family: str
    constructor: Callable[..., FerdModel]
    input_size: tuple[int, int, int]  # (C, H, W) the model was designed for
    default_num_classes: int
    paper_role: str  # e.g. "CIFAR teacher", spec §4.1 / §8
    split: str  # where features() stops (spec §4.2)
    checkpoint_key_adapter: Callable[[StateDict], StateDict] | None = None


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    family: str,
    input_size: tuple[int, int, int],
    default_num_classes: int,
    paper_role: str,
    split: str,
    checkpoint_key_adapter: Callable[[StateDict], StateDict] | None = None,
) -> Callable[[Callable[..., FerdModel]], Callable[..., FerdModel]]:
    """Decorator registering a constructor `fn(num_classes=..., <explicit keywords>) -> FerdModel` under `name`.

    Keep the constructor's keywords explicit: `create_model` checks user keywords against its signature.
    """

    def decorator(fn: Callable[..., FerdModel]) -> Callable[..., FerdModel]:
        if name in _REGISTRY:
            raise ConfigError("name", name, "a model name not registered yet")
        _REGISTRY[name] = ModelEntry(name, family, fn, tuple(input_size), default_num_classes,
                                     paper_role, split, checkpoint_key_adapter)
        return fn

    return decorator


def list_models() -> list[str]:
    """All registered names, sorted."""
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    """The `ModelEntry` of `name`; an unknown name raises ConfigError listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError("model", name, list_models()) from None


def create_model(name: str, num_classes: int | None = None, **kw) -> FerdModel:
    """Build a fresh (randomly initialised) model; `num_classes=None` means the entry's default.

    Extra keyword arguments go to the family constructor (e.g. `in_channels`, `width`, `drop_rate`).
    """
    entry = get_entry(name)
    if num_classes is None:
        num_classes = entry.default_num_classes
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError("num_classes", num_classes, "an int >= 2")
    allowed = [p for p in inspect.signature(entry.constructor).parameters if p != "num_classes"]
    for key in kw:
        if key not in allowed:
            raise ConfigError(f"{name} keyword", key, allowed)
    return entry.constructor(num_classes=num_classes, **kw)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def strip_prefix(state_dict: StateDict, prefix: str = "module.") -> StateDict:
    """Drop a DataParallel-style key prefix where present (spec §4.4)."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}
