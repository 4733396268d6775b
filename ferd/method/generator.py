"""The CMI/Fast-style image generator FERD synthesises its data with, and its per-epoch re-initialisation.

`Generator(nz, img_size, nc)` maps latents z [B, nz] to images [B, nc, s, s] in [0, 1] (spec 4.5);
`reinit_generator(G)` resets its weights at the start of every synthesis round (spec 4.5, 5.2 step 3).
"""
from __future__ import annotations

import torch
from torch import nn

from ferd.errors import ConfigError


class Generator(nn.Module):
    """Linear -> BN -> up x2 -> conv-BN-LReLU -> up x2 -> conv-BN-LReLU -> conv -> Sigmoid (spec 4.5).

    Args:
        nz: latent size (100 for FERD, 256 for CMI/Fast/DFHL).
        img_size: output side s; must be divisible by 4 (28, 32, 64 in our profiles).
        nc: output channels (1 for Fashion-MNIST, 3 otherwise).
        ngf: base width; the first map has 2*ngf channels.
    Shapes: z [B, nz] -> x [B, nc, s, s], values in [0, 1].
    """

    def __init__(self, nz: int = 100, img_size: int = 32, nc: int = 3, ngf: int = 64):
        super().__init__()
        if img_size <= 0 or img_size % 4:
            raise ConfigError("img_size", img_size, "a positive multiple of 4 (e.g. 28, 32, 64)")
        for name, value in (("nz", nz), ("nc", nc), ("ngf", ngf)):
            if value <= 0:
                raise ConfigError(name, value, "a positive integer")
        self.nz, self.img_size, self.nc, self.ngf = nz, img_size, nc, ngf
        self.init_size = img_size // 4
        self.l1 = nn.Linear(nz, 2 * ngf * self.init_size ** 2)
        self.conv_blocks = nn.Sequential(
            nn.BatchNorm2d(2 * ngf),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(2 * ngf, 2 * ngf, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(2 * ngf),
            nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(2 * ngf, ngf, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.LeakyReLU(0.2),
            nn.Conv2d(ngf, nc, 3, stride=1, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images [B, nc, s, s] in [0, 1] from latents z [B, nz]."""
        out = self.l1(z).view(z.shape[0], 2 * self.ngf, self.init_size, self.init_size)  # [B, 2ngf, s/4, s/4]
        return self.conv_blocks(out)

    def extra_repr(self) -> str:
        return f"nz={self.nz}, img_size={self.img_size}, nc={self.nc}, ngf={self.ngf}"


@torch.no_grad()
def reinit_generator(G: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Re-initialise G in place as the release does every epoch; returns G.

    Conv/ConvTranspose/Linear weights ~ N(0, 0.02), their biases 0; BatchNorm2d weights ~ N(1, 0.02), biases 0.
    BN running statistics are left alone, as in the release: G runs in train mode during synthesis, where only
    batch statistics are used.
    Args:
        G: any module (normally a `Generator`).
        generator: seeds the draws (drawn on its device, then copied to the parameter's device).
    Spec: 4.5 (re-initialisation), 5.2 step 3.
    """

    def normal_(p: torch.Tensor, mean: float, std: float) -> None:
        dev = generator.device if generator is not None else p.device
        p.copy_(torch.empty(p.shape, dtype=p.dtype, device=dev).normal_(mean, std, generator=generator))

    for m in G.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            normal_(m.weight, 1.0, 0.02)
            m.bias.zero_()
    return G
