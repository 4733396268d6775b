"""Differentiable per-sample augmentation: random crop with zero padding, then random horizontal flip.

FERD augments twice (spec 5.2 step 1 and 5.9): the generator output before every loss, where gradients must
flow back to the generator, and each pool batch in the student stage. The release uses kornia's
`RandomCrop(padding=4)` + `RandomHorizontalFlip()`; this is the same transform written with plain indexing,
so it is differentiable w.r.t. the images, vectorised over the batch and seeded by a `torch.Generator`.
"""
from __future__ import annotations

import torch

from ferd.errors import ConfigError


def _draw(generator: torch.Generator | None, device: torch.device) -> torch.device:
    """Device to draw random numbers on: the generator's own, else the data's."""
    return generator.device if generator is not None else device


def augment(x: torch.Tensor, padding: int = 4, flip: bool = True,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop (zero padding `padding`, back to H x W) then horizontal flip with p = 0.5, per sample.

    Args:
        x: images [B, C, H, W], any float dtype; gradients flow back to x (spec 5.2).
        padding: zero padding on every side before the crop, pixels (>= 0); offsets are uniform in
            {0, ..., 2*padding} independently for rows and columns, as kornia's RandomCrop.
        flip: whether to apply the random horizontal flip.
        generator: seeds the crop offsets and flips (drawn on the generator's device).
    Returns:
        augmented images [B, C, H, W], same dtype and device as x.
    Spec: 5.2 (generator stage), 5.7 / 5.9 (student stage).
    """
    if x.dim() != 4:
        raise ConfigError("x", tuple(x.shape), "a 4-d image batch [B, C, H, W]")
    if padding < 0:
        raise ConfigError("padding", padding, "an integer >= 0")
    b, _, h, w = x.shape
    dev = _draw(generator, x.device)
    if padding > 0:
        oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev).to(x.device)
        ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev).to(x.device)
        xp = torch.nn.functional.pad(x, (padding, padding, padding, padding))  # [B, C, H+2p, W+2p]
        rows = oy[:, None] + torch.arange(h, device=x.device)  # [B, H]
        cols = ox[:, None] + torch.arange(w, device=x.device)  # [B, W]
        bidx = torch.arange(b, device=x.device)[:, None, None]  # [B, 1, 1]
        # advanced indexing on dims 0, 2, 3 of the channels-last view gathers each sample's window
        x = xp.permute(0, 2, 3, 1)[bidx, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
        x = x.permute(0, 3, 1, 2)  # [B, C, H, W]
    if flip:
        do_flip = torch.rand(b, generator=generator, device=dev).to(x.device) < 0.5
        x = torch.where(do_flip[:, None, None, None], x.flip(-1), x)
    return x.contiguous()
