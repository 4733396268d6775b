"""CIFAR ResNet-18, the paper's RN-18 student (spec §4.1, §4.3).

3x3 stem, no max-pool, a fixed 4x4 average pool at the end (as in the released code), so it expects 32x32
input. Split: output of the last stage before pooling, Z = [B, 512, 4, 4]; students need no split for FAEs,
but every model exposes features/head (spec §4.2).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ferd.toolkit.models.registry import FerdModel, register_model, strip_prefix


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus (projected) shortcut, then ReLU."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(FerdModel):
    """CIFAR ResNet with four stages of widths 64/128/256/512 and strides 1/2/2/2."""

    def __init__(self, num_blocks: tuple[int, int, int, int], num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        stages, in_planes = [], 64
        for planes, n, stride in zip((64, 128, 256, 512), num_blocks, (1, 2, 2, 2)):
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(BasicBlock(in_planes, planes, s))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(512, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.layer4(out)  # [B, 512, 4, 4] at 32x32

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(F.avg_pool2d(z, 4).flatten(1))  # [B, 512] -> [B, C]


@register_model("resnet18", family="resnet", input_size=(3, 32, 32), default_num_classes=10,
                paper_role="CIFAR-10/100 student (RN-18)",
                split="output of layer4 before pooling (Z [B,512,4,4]); head = 4x4 avg pool -> linear",
                checkpoint_key_adapter=strip_prefix)
def resnet18(num_classes: int = 10, in_channels: int = 3) -> ResNet:
    return ResNet((2, 2, 2, 2), num_classes, in_channels)
