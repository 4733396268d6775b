"""FERD's generation stage (spec 5.2-5.4): one round of N_G generator steps that yields the kept batch.

The generator is re-initialised, latents are fresh and trainable, and each step minimises
5 L_bn + 1 L_adv + 1 L_oh + 5 L_uni on the augmented batch. The un-augmented batch of the step with the
lowest loss is kept (tracked on the device, without a host sync per step); the last step's augmented batch
is returned for the robustness probe (spec 5.6, `probe_batch = last_augmented`).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ferd.augment import augment
from ferd.fae import ib_fit, robust_mask, uniformity_loss
from ferd.generator import reinit_generator
from ferd.losses import BNStatsLoss, ikl, teacher_prior

if TYPE_CHECKING:
    from ferd.parallel import Comm


@dataclass
class SynthesisResult:
    """What one generation round produces: the kept batch, its labels, the probe batch and loss parts."""

    x: torch.Tensor  # kept un-augmented batch [B, C, H, W] in [0, 1]
    y: torch.Tensor  # sampled labels [B]
    probe_x: torch.Tensor  # last step's augmented batch [B, C, H, W]
    parts: dict[str, float] = field(default_factory=dict)  # loss parts at the kept step


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Temporarily stop gradients to the modules' parameters (teacher and student during generation)."""
    flags = [[p.requires_grad for p in m.parameters()] for m in modules]
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(False)
    try:
        yield
    finally:
        for m, fl in zip(modules, flags):
            for p, f in zip(m.parameters(), fl):
                p.requires_grad_(f)


def sample_labels(p: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Draw B labels i.i.d. from the class distribution p (with replacement), sorted (spec 5.2)."""
    return torch.multinomial(p.cpu().double(), batch_size, replacement=True).sort().values


def ferd_round(teacher: nn.Module, student: nn.Module, G: nn.Module, bn: BNStatsLoss, y: torch.Tensor, *,
               nz: int, steps: int, lr_g: float, lr_z: float, weights: tuple[float, float, float, float],
               use_fae: bool, ib_steps: int, ib_lr: float, ib_beta: float, ib_noise: str, ikl_T2: float,
               padding: int, device: torch.device, comm: Comm | None = None) -> SynthesisResult:
    """One FERD generation round (spec 5.9, generation stage). `weights` = (bn, adv, oh, uni).

    With `comm` (ferd.parallel) this rank optimises its slice of y and z, generator gradients are averaged
    over ranks and the kept step is chosen on the rank-averaged loss; the result holds this rank's slice.
    """
    w_bn, w_adv, w_oh, w_uni = weights
    y = y.to(device)
    z = torch.randn(len(y), nz, device=device)
    if comm is not None:  # every rank draws the same y and z (same seed) and keeps its slice
        y, z = comm.shard(y), comm.shard(z)
    z.requires_grad_(True)
    reinit_generator(G)
    opt = torch.optim.Adam([{"params": G.parameters(), "lr": lr_g}, {"params": [z], "lr": lr_z}],
                           betas=(0.5, 0.999))
    teacher.eval()
    student.eval()
    G.train()
    best = torch.full((), float("inf"), device=device)
    best_x = torch.zeros(0, device=device)
    best_parts = torch.full((5,), float("nan"), device=device)  # stays NaN (caught by the loop) if no step is finite
    probe_x = best_x
    with frozen(teacher, student):
        for _ in range(steps):
            x = G(z)
            xh = augment(x, padding=padding)
            with bn.recording():
                Z = teacher.features(xh)
                t = teacher.head(Z)
            l_bn = bn.loss()
            l_oh = F.cross_entropy(t, y)
            l_adv = -ikl(student(xh), t, teacher_prior(t, ikl_T2))
            if use_fae and w_uni > 0:
                # fae_term's steps without its float() diagnostics, which would sync the host every step
                s_star = ib_fit(teacher.head, Z.detach(), y, steps=ib_steps, lr=ib_lr, beta=ib_beta, noise=ib_noise)
                l_uni = uniformity_loss(teacher.head, Z, robust_mask(s_star, Z.detach()))
            else:
                l_uni = torch.zeros((), device=device)
            loss = w_bn * l_bn + w_adv * l_adv + w_oh * l_oh + w_uni * l_uni
            with torch.no_grad():
                score = loss if comm is None else comm.mean(loss)  # ranks keep the same step
                better = score < best
                best = torch.where(better, score, best)
                best_x = torch.where(better, x, best_x) if best_x.numel() else x.detach().clone()
                best_parts = torch.where(better, torch.stack([l_bn, l_adv, l_oh, l_uni, loss]), best_parts)
            probe_x = xh.detach()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if comm is not None:
                comm.average_grads(G.parameters())
            opt.step()
    names = ("gen_bn", "gen_adv", "gen_oh", "gen_uni", "gen_total")
    parts = dict(zip(names, best_parts.tolist()))
    return SynthesisResult(best_x.detach().clamp(0, 1), y, probe_x, parts)
