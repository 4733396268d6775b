"""CIFAR MobileNet-V2, the paper's MN-V2 student (spec §4.1, §4.3).

Standard inverted-residual layout (Sandler et al. 2018) adapted to 32x32: stride 1 in the stem and in the
second stage, a 1280-d last conv, adaptive average pool. ReLU6 and no classifier dropout are our reading
(the released MN-V2 file was not available). `InvertedResidual` is reused by the small Fashion-MNIST
student in `small.py`. Split: the 1280-d conv-BN-ReLU6 output before pooling, Z = [B, 1280, 4, 4].
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ferd.toolkit.models.registry import FerdModel, register_model, strip_prefix

# (expansion t, out channels c, repeats n, first stride s); CIFAR: second row stride 2 -> 1.
CIFAR_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


def conv_bn_relu6(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU6())


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise -> 1x1 linear projection; residual when shape is kept."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_ch * expansion
        layers: list[nn.Module] = [] if expansion == 1 else [conv_bn_relu6(in_ch, hidden, 1)]
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


def make_stages(in_ch: int, setting: Sequence[tuple[int, int, int, int]]) -> tuple[nn.Sequential, int]:
    """Stack the inverted-residual rows of `setting`; returns the stack and its output width."""
    blocks = []
    for t, c, n, s in setting:
        for i in range(n):
            blocks.append(InvertedResidual(in_ch, c, s if i == 0 else 1, t))
            in_ch = c
    return nn.Sequential(*blocks), in_ch


class MobileNetV2(FerdModel):
    """MobileNet-V2: stem conv 3x3 (stride `stem_stride`) -> inverted residuals -> 1x1 conv to `last_channels`."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, stem_channels: int = 32,
                 setting: Sequence[tuple[int, int, int, int]] = CIFAR_SETTING, last_channels: int = 1280,
                 stem_stride: int = 1):
        super().__init__()
        self.stem = conv_bn_relu6(in_channels, stem_channels, 3, stem_stride)
        self.blocks, width = make_stages(stem_channels, setting)
        self.last = conv_bn_relu6(width, last_channels, 1)
        self.linear = nn.Linear(last_channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.blocks(self.stem(x)))  # [B, last_channels, H/8, W/8]

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(F.adaptive_avg_pool2d(z, 1).flatten(1))


@register_model("mobilenetv2", family="mobilenetv2", input_size=(3, 32, 32), default_num_classes=10,
                paper_role="CIFAR-10/100 student (MN-V2)",
                split="1280-d conv-BN-ReLU6 output before pooling (Z [B,1280,4,4]); head = avg pool -> linear",
                checkpoint_key_adapter=strip_prefix)
def mobilenetv2(num_classes: int = 10, in_channels: int = 3) -> MobileNetV2:
    return MobileNetV2(num_classes, in_channels)
