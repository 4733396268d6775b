"""Pre-activation WideResNet-34-10 / -20, the CIFAR teachers (spec §4.1, §4.3).

Module and key names follow the TRADES/RSLAD WRN (`conv1`, `block1..3.layer.i.*`, `bn1`, `fc`), so their
state dicts load after `adapt_trades_keys`. Split point (spec §4.2): the final BatchNorm output, before
its ReLU: Z is [B, 64k, 8, 8] for 32x32 input (640 channels for k=10, 1280 for k=20).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ferd.errors import ConfigError
from ferd.toolkit.models.registry import FerdModel, StateDict, make_normalization, register_model, strip_prefix


class WideBasicBlock(nn.Module):
    """BN-ReLU-conv-BN-ReLU-(dropout)-conv with identity or 1x1-conv shortcut (TRADES layout)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.drop_rate = drop_rate
        self.equal_in_out = in_planes == out_planes
        # TRADES names it convShortcut; keep the name so checkpoints load without renaming.
        self.convShortcut = None if self.equal_in_out else nn.Conv2d(in_planes, out_planes, 1, stride, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = F.relu(self.bn1(x))
        # When shapes change, the shortcut also starts from the activated input (TRADES behaviour).
        shortcut = x if self.equal_in_out else self.convShortcut(act)
        out = F.relu(self.bn2(self.conv1(act)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return shortcut + self.conv2(out)


class NetworkBlock(nn.Module):
    """One stage of `n` blocks; the first may change width and stride."""

    def __init__(self, n: int, in_planes: int, out_planes: int, stride: int, drop_rate: float):
        super().__init__()
        self.layer = nn.Sequential(*[
            WideBasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, drop_rate)
            for i in range(n)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(FerdModel):
    """WRN-depth-widen with widths 16 -> 16k/32k/64k and strides 1/2/2 (spec §4.3).

    Args:
        depth: 6n + 4 (34 -> 5 blocks per stage).
        widen_factor: k (10 or 20 in the paper).
        drop_rate: dropout inside blocks; 0.3 in the released code (matters for D4's train-mode leak).
        mean, std: optional per-channel input normalisation (buffers); None = raw [0, 1] input.
    """

    def __init__(self, depth: int = 34, widen_factor: int = 10, num_classes: int = 10, in_channels: int = 3,
                 drop_rate: float = 0.3, mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ConfigError("depth", depth, "6n + 4 (e.g. 28, 34)")
        if not 0.0 <= drop_rate < 1.0:
            raise ConfigError("drop_rate", drop_rate, "a float in [0, 1)")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.normalize = make_normalization(mean, std)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(n, widths[0], widths[1], 1, drop_rate)
        self.block2 = NetworkBlock(n, widths[1], widths[2], 2, drop_rate)
        self.block3 = NetworkBlock(n, widths[2], widths[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():  # TRADES initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.normalize(x))
        out = self.block3(self.block2(self.block1(out)))
        return self.bn1(out)  # [B, 64k, 8, 8], pre-activation

    def head(self, z: torch.Tensor) -> torch.Tensor:
        out = F.adaptive_avg_pool2d(F.relu(z), 1).flatten(1)  # [B, 64k]
        return self.fc(out)


def adapt_trades_keys(state_dict: StateDict) -> StateDict:
    """TRADES/RSLAD WRN checkpoint -> our keys: strip `module.`, drop the unused `sub_block1` (spec §4.4)."""
    state_dict = strip_prefix(state_dict, "module.")
    return {k: v for k, v in state_dict.items() if not k.startswith("sub_block1.")}


_SPLIT = "final BatchNorm output before its ReLU (Z [B,{c},8,8]); head = ReLU -> global avg pool -> linear"


@register_model("wrn-34-10", family="wideresnet", input_size=(3, 32, 32), default_num_classes=10,
                paper_role="CIFAR-10/100 teacher", split=_SPLIT.format(c=640),
                checkpoint_key_adapter=adapt_trades_keys)
def wrn_34_10(num_classes: int = 10, in_channels: int = 3, drop_rate: float = 0.3,
              mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> WideResNet:
    return WideResNet(34, 10, num_classes, in_channels, drop_rate, mean, std)


@register_model("wrn-34-20", family="wideresnet", input_size=(3, 32, 32), default_num_classes=10,
                paper_role="CIFAR-10 teacher (teacher-transfer study)", split=_SPLIT.format(c=1280),
                checkpoint_key_adapter=adapt_trades_keys)
def wrn_34_20(num_classes: int = 10, in_channels: int = 3, drop_rate: float = 0.3,
              mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> WideResNet:
    return WideResNet(34, 20, num_classes, in_channels, drop_rate, mean, std)
