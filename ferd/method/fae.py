"""Fairness-aware examples (FAE): information-bottleneck noise fit, robust-channel mask, uniformity loss.

Inside every generator step (spec 5.4): fit per-(sample, channel) noise scales on the detached teacher features
Z (a), call a channel robust when its fitted noise variance exceeds the batch's largest spatial variance (b), and
ask the teacher head to predict uniformly from the non-robust channels alone (c). `fae_term` runs all three.
`head` is any callable Z -> logits (e.g. a teacher's bound `head` method); it must treat samples independently
(teacher in eval mode, spec 5.2).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ferd.errors import ConfigError
from ferd.method.losses import uniform_kl

Head = Callable[[torch.Tensor], torch.Tensor]
NOISE_MODES = ("per_channel", "per_element")
_DELTA = 1e-10  # the release's stabiliser on both variances (spec 5.4(a), D7)


def spatial_variance(Z: torch.Tensor) -> torch.Tensor:
    """Unbiased variance of each feature map over its H*W positions: Z [B, K, H, W] -> v [B, K]."""
    if Z.dim() != 4 or Z.shape[2] * Z.shape[3] < 2:
        raise ConfigError("Z", tuple(Z.shape), "a feature map [B, K, H, W] with H*W >= 2")
    return Z.var(dim=(2, 3), unbiased=True)


def ib_kl(v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The release's IB KL term: mean_{b,k} 0.5 (v/(s^2+d) + log((s^2+d)/(v+d)) - 1), d = 1e-10 (spec 5.4(a), D7).

    Shapes: v [B, K], s [B, K, 1, 1] -> scalar.
    """
    s2 = s.flatten(1).square()  # [B, K]
    return (0.5 * (v / (s2 + _DELTA) + torch.log((s2 + _DELTA) / (v + _DELTA)) - 1.0)).mean()


def _noise(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    dev = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=dev, dtype=like.dtype).to(like.device)


def ib_fit(head: Head, Z_detached: torch.Tensor, y: torch.Tensor, steps: int = 50, lr: float = 0.1,
           beta: float = 0.3, noise: str = "per_channel",
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Fit the information-bottleneck noise scales s* = softplus(Lambda) (spec 5.4(a)).

    Minimises CE(head(Zbar + softplus(Lambda) * xi), y) + beta * KL-term over Lambda [B, K, 1, 1], Lambda_0 = 0,
    with `steps` Adam steps at `lr`, fresh xi ~ N(0, 1) every step: [B, K, 1, 1] broadcast over H x W for
    "per_channel" (the release), [B, K, H, W] for "per_element" (D7 switch). The head's parameters get no update
    and no `.grad`: gradients are taken w.r.t. Lambda only (`torch.autograd.grad`).
    Args:
        head: Z -> logits [B, C].
        Z_detached: features [B, K, H, W] (detached here anyway).
        y: int labels [B].
        generator: seeds the noise.
    Returns: s* [B, K, 1, 1], detached.
    """
    if noise not in NOISE_MODES:
        raise ConfigError("noise", noise, NOISE_MODES)
    if steps < 0:
        raise ConfigError("steps", steps, "an integer >= 0")
    Zbar = Z_detached.detach()
    b, k, h, w = Zbar.shape
    v = spatial_variance(Zbar)  # [B, K]
    lam = torch.zeros(b, k, 1, 1, dtype=Zbar.dtype, device=Zbar.device, requires_grad=True)
    opt = torch.optim.Adam([lam], lr=lr)
    shape = (b, k, 1, 1) if noise == "per_channel" else (b, k, h, w)
    with torch.enable_grad():
        for _ in range(steps):
            s = F.softplus(lam)  # [B, K, 1, 1]
            logits = head(Zbar + s * _noise(shape, Zbar, generator))
            loss = F.cross_entropy(logits, y) + beta * ib_kl(v, s)
            (lam.grad,) = torch.autograd.grad(loss, [lam])
            opt.step()
    return F.softplus(lam).detach()


@torch.no_grad()
def robust_mask(s_star: torch.Tensor, Z_detached: torch.Tensor) -> torch.Tensor:
    """Robust-channel mask M_bk = 1[s*_bk^2 > max_{b,k} v_bk] (spec 5.4(b)): one threshold for the whole batch.

    Shapes: s_star [B, K, 1, 1], Z [B, K, H, W] -> M [B, K, 1, 1] float, no gradient.
    """
    v_max = spatial_variance(Z_detached.detach()).max()
    return (s_star.detach().square() > v_max).to(Z_detached.dtype)


def uniformity_loss(head: Head, Z: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """L_uni = mean_b KL(U || q(head(Z * (1 - M)))) (spec 5.4(c)); gradients reach Z, M is a constant.

    Shapes: Z [B, K, H, W], M [B, K, 1, 1] -> scalar. Run it outside `BNStatsLoss.recording()`.
    """
    return uniform_kl(head(Z * (1.0 - M.detach())))


def fae_term(head: Head, Z: torch.Tensor, y: torch.Tensor, steps: int = 50, lr: float = 0.1, beta: float = 0.3,
             noise: str = "per_channel", generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, dict[str, float]]:
    """Steps (a)-(c) of spec 5.4 on one generator batch: IB fit on stopgrad(Z), mask, uniformity loss.

    Args:
        head: the teacher head Z -> logits.
        Z: teacher features of the augmented batch [B, K, H, W], NOT detached (gradients reach G through Z_nr).
        y: sampled labels [B].
    Returns:
        (L_uni scalar, info) with info["nonrobust_fraction"] = mean of 1 - M over (B, K) and info["s_star_mean"],
        0-d tensors (no host synchronisation inside the generator step; `float()` them to print).
    """
    Zbar = Z.detach()
    s_star = ib_fit(head, Zbar, y, steps=steps, lr=lr, beta=beta, noise=noise, generator=generator)
    M = robust_mask(s_star, Zbar)
    loss = uniformity_loss(head, Z, M)
    return loss, {"nonrobust_fraction": 1.0 - M.mean(), "s_star_mean": s_star.mean()}
