"""Small models of the CPU profile (Fashion-MNIST, 1x28x28; spec §8).

- "fmnist-cnn-large": the `cpu` profile's teacher: the same layout with widths 64/128/256 and a head that keeps
  a coarse spatial layout (ReLU -> 3x3 average pool -> linear), 393k parameters.
- "fmnist-cnn": the spec's BN-CNN teacher (~94k parameters; the smoke profile's teacher). Its split point is the third conv's BN output,
  pre-activation, Z = [B, 128*width, 7, 7]. `width=0.5` gives the spec §8 "same layout, 16/32/64" student.
- "fmnist-resnet": a small ResNet student (stride-2 stem, BasicBlocks 16/32/64, ~78k parameters).
- "fmnist-mobilenet": a small MobileNet-V2-style student (stride-2 stem, inverted residuals, ~51k parameters).

The students' stride-2 stems (28 -> 14) make a student step about 6x cheaper than full-resolution stems
(measured on 2 CPU cores), which is what lets the whole `cpu` book run on a laptop; the teacher keeps full
resolution because FAE needs its 7x7 split-point features.

All use adaptive pooling, so they accept any `in_channels` and image size >= 8 (e.g. 3x32x32 as well).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ferd.errors import ConfigError
from ferd.toolkit.models.mobilenetv2 import MobileNetV2
from ferd.toolkit.models.registry import FerdModel, register_model, strip_prefix
from ferd.toolkit.models.resnet import BasicBlock


def conv_bn(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False), nn.BatchNorm2d(out_ch)]


class FashionCNN(FerdModel):
    """conv3x3-BN-ReLU-maxpool x2, conv3x3-BN (= Z) ; head ReLU -> GAP or flatten -> linear (spec §8).

    `head_pool=k` average-pools Z to k x k before the linear layer: k = 1 is global average pooling (the spec's
    head); k > 1 keeps a coarse spatial layout (where the sleeves and the collar are), which global pooling loses.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: float = 1.0,
                 widths: tuple[int, int, int] = (32, 64, 128), head_pool: int = 1):
        super().__init__()
        if not width > 0:
            raise ConfigError("width", width, "a float > 0")
        if not (isinstance(head_pool, int) and 1 <= head_pool <= 7):
            raise ConfigError("head_pool", head_pool, "an int in [1, 7]")
        c1, c2, c3 = (max(1, round(c * width)) for c in widths)
        self.body = nn.Sequential(
            *conv_bn(in_channels, c1), nn.ReLU(), nn.MaxPool2d(2),  # 28 -> 14
            *conv_bn(c1, c2), nn.ReLU(), nn.MaxPool2d(2),  # 14 -> 7
            *conv_bn(c2, c3),  # split point l: BN output, before its ReLU
        )
        self.head_pool = head_pool
        self.linear = nn.Linear(c3 * head_pool * head_pool, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # [B, c3, H/4, W/4]

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(F.adaptive_avg_pool2d(F.relu(z), self.head_pool).flatten(1))


class SmallResNet(FerdModel):
    """conv3x3-BN-ReLU stem (stride `stem_stride`), one BasicBlock per stage (strides 1/2/2), GAP -> linear."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, widths: tuple[int, ...] = (16, 32, 64),
                 stem_stride: int = 2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, stem_stride, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, in_planes = [], widths[0]
        for i, planes in enumerate(widths):
            blocks.append(BasicBlock(in_planes, planes, 1 if i == 0 else 2))
            in_planes = planes
        self.layers = nn.Sequential(*blocks)
        self.linear = nn.Linear(in_planes, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))  # [B, widths[-1], H/8, W/8] (rounded up) with a stride-2 stem

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(F.adaptive_avg_pool2d(z, 1).flatten(1))


# (t, c, n, s): stride-2 stem 28 -> 14, then 14 -> 7 -> 4 with three expansion-4 stages.
FMNIST_MOBILENET_SETTING = ((1, 8, 1, 1), (4, 16, 2, 2), (4, 24, 2, 2), (4, 48, 2, 1))


@register_model("fmnist-cnn", family="small", input_size=(1, 28, 28), default_num_classes=10,
                paper_role="CPU-profile teacher (spec §8; width=0.5 = the spec's 24k student)",
                split="third conv's BN output, pre-activation (Z [B,128,7,7]); head = ReLU -> GAP -> linear",
                checkpoint_key_adapter=strip_prefix)
def fmnist_cnn(num_classes: int = 10, in_channels: int = 1, width: float = 1.0) -> FashionCNN:
    return FashionCNN(num_classes, in_channels, width)


@register_model("fmnist-cnn-large", family="small", input_size=(1, 28, 28), default_num_classes=10,
                paper_role="CPU-profile teacher (issue 10: 393k parameters, 5-8x its students, as the paper's 4-20x)",
                split="third conv's BN output, pre-activation (Z [B,256,7,7]); head = ReLU -> 3x3 average pool -> linear",
                checkpoint_key_adapter=strip_prefix)
def fmnist_cnn_large(num_classes: int = 10, in_channels: int = 1, head_pool: int = 3) -> FashionCNN:
    return FashionCNN(num_classes, in_channels, widths=(64, 128, 256), head_pool=head_pool)


@register_model("fmnist-resnet", family="small", input_size=(1, 28, 28), default_num_classes=10,
                paper_role="CPU-profile student (small ResNet)",
                split="last stage output before pooling (Z [B,64,4,4]); head = GAP -> linear",
                checkpoint_key_adapter=strip_prefix)
def fmnist_resnet(num_classes: int = 10, in_channels: int = 1, widths: tuple[int, ...] = (16, 32, 64),
                  stem_stride: int = 2) -> SmallResNet:
    return SmallResNet(num_classes, in_channels, tuple(widths), stem_stride)


@register_model("fmnist-mobilenet", family="small", input_size=(1, 28, 28), default_num_classes=10,
                paper_role="CPU-profile student (small MobileNet-V2)",
                split="last 1x1 conv-BN-ReLU6 output before pooling (Z [B,128,4,4]); head = GAP -> linear",
                checkpoint_key_adapter=strip_prefix)
def fmnist_mobilenet(num_classes: int = 10, in_channels: int = 1) -> MobileNetV2:
    return MobileNetV2(num_classes, in_channels, stem_channels=16, setting=FMNIST_MOBILENET_SETTING,
                       last_channels=128, stem_stride=2)
