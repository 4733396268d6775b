"""Pre-activation ResNet-18 / -34 (He et al. 2016): the Tiny-ImageNet teacher/student (spec §4.1, §4.3).

Rice et al. layout with a final BN and an adaptive average pool, so the same net runs at 32x32 and 64x64.
Key names match the released checkpoint after stripping its DataParallel `module.` prefix (spec §4.4).
Split (spec §4.2): the output of the third stage, Z = [B, 256, H/4, W/4] (16x16 at 64 px input);
head = fourth stage -> BN -> ReLU -> adaptive avg pool -> linear.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ferd.toolkit.models.registry import FerdModel, register_model, strip_prefix


class PreActBlock(nn.Module):
    """BN-ReLU-conv-BN-ReLU-conv; the projection shortcut starts from the activated input."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(act)
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        return out + shortcut


class PreActResNet(FerdModel):
    """Four stages of widths 64/128/256/512, strides 1/2/2/2, 3x3 stem without max-pool."""

    def __init__(self, num_blocks: tuple[int, int, int, int], num_classes: int = 200, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        stages, in_planes = [], 64
        for planes, n, stride in zip((64, 128, 256, 512), num_blocks, (1, 2, 2, 2)):
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(PreActBlock(in_planes, planes, s))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer3(self.layer2(self.layer1(self.conv1(x))))  # [B, 256, H/4, W/4]

    def head(self, z: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.layer4(z)))  # [B, 512, H/8, W/8]
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


_SPLIT = ("output of the third stage (Z [B,256,16,16] at 64 px); "
          "head = stage 4 -> BN -> ReLU -> adaptive avg pool -> linear")


@register_model("preactresnet18", family="preactresnet", input_size=(3, 64, 64), default_num_classes=200,
                paper_role="Tiny-ImageNet student (PreActResNet-18)", split=_SPLIT,
                checkpoint_key_adapter=strip_prefix)
def preactresnet18(num_classes: int = 200, in_channels: int = 3) -> PreActResNet:
    return PreActResNet((2, 2, 2, 2), num_classes, in_channels)


@register_model("preactresnet34", family="preactresnet", input_size=(3, 64, 64), default_num_classes=200,
                paper_role="Tiny-ImageNet teacher (PreActResNet-34, Linf)", split=_SPLIT,
                checkpoint_key_adapter=strip_prefix)
def preactresnet34(num_classes: int = 200, in_channels: int = 3) -> PreActResNet:
    return PreActResNet((3, 4, 6, 3), num_classes, in_channels)
