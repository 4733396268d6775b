"""A tiny separable image problem and models for the attack/evaluation tests (CPU, < 1 s).

Class c images are ``0.5 + amplitude * P_c + noise`` with a fixed random +-1 pattern ``P_c``; a small
MLP learns it to ~100% clean accuracy but stays attackable at eps = 0.1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ToySplit:
    """Duck-typed stand-in for ``ferd.toolkit.data.ImageSplit`` (images, labels, classes)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]


def make_split(n_per_class: int = 50, num_classes: int = 4, size: int = 6, amplitude: float = 0.12,
               seed: int = 0, uint8: bool = False) -> ToySplit:
    g = torch.Generator().manual_seed(1234)  # patterns are fixed; `seed` only changes the noise
    patterns = torch.randint(0, 2, (num_classes, 1, size, size), generator=g).float() * 2 - 1
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    noise = 0.08 * torch.randn((len(labels), 1, size, size), generator=g)
    images = (0.5 + amplitude * patterns[labels] + noise).clamp(0, 1)
    if uint8:
        images = (images * 255).round().to(torch.uint8)
    return ToySplit(images, labels, [f"class{c}" for c in range(num_classes)])


def mlp(num_classes: int = 4, size: int = 6) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(size * size, 32), nn.ReLU(),
                         nn.Linear(32, num_classes))


def conv_bn(num_classes: int = 4) -> nn.Module:
    """Untrained conv net with BatchNorm and Dropout, for mode-restoration tests."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, num_classes))


def trained_mlp(num_classes: int = 4, steps: int = 200, seed: int = 0) -> nn.Module:
    """MLP trained with Adam on the toy problem; returned in eval mode."""
    torch.manual_seed(seed)
    split = make_split(n_per_class=100, num_classes=num_classes, seed=seed + 1)
    model = mlp(num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(split.images), split.labels).backward()
        opt.step()
    return model.eval()
