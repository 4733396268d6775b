"""Tiny CPU models and inputs shared by the engine-piece tests (augment, losses, FAE, reweighting, UTAE)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TinyCNN(nn.Module):
    """Two convs with BN; features = up to the second BN (pre-activation), head = ReLU, pool, linear."""

    def __init__(self, nc: int = 1, num_classes: int = 10, width: int = 8, dropout: float = 0.0):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(nc, width, 3, padding=1), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))

    def head(self, Z: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(F.relu(Z).mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def tiny_teacher(seed: int = 0, **kw) -> TinyCNN:
    """A teacher with non-trivial BN running statistics, in eval mode."""
    torch.manual_seed(seed)
    model = TinyCNN(**kw)
    with torch.no_grad():
        for bn in (model.bn1, model.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
    return model.eval()


def images(b: int = 6, nc: int = 1, s: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, nc, s, s, generator=torch.Generator().manual_seed(seed))
