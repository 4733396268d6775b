"""The generation stage (spec 5.2-5.4): one generator round, shared by FERD and every generator baseline.

`generation_round` runs N_G Adam steps on a generator and its latents against an objective and keeps the
un-augmented batch of the lowest-loss step (tracked on the device, without a host sync per step); the last
step's augmented batch is returned for the robustness probe (spec 5.6, `probe_batch = last_augmented`).
`ferd_objective` is FERD's: 5 L_bn + 1 L_adv + 1 L_oh + 5 L_uni (the weights are configurable), and
`ferd_round` puts the two together, re-initialising the generator first unless the caller keeps it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ferd.errors import ConfigError
from ferd.method.fae import fae_term
from ferd.method.generator import reinit_generator
from ferd.method.losses import BNStatsLoss, ikl, teacher_prior
from ferd.toolkit.augment import augment

if TYPE_CHECKING:
    from ferd.method.parallel import Comm

# objective(x_hat [B, C, H, W], y [B]) -> (total loss, {name: scalar tensor}) for one generator step
GeneratorObjective = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]


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


def generation_round(G: nn.Module, z: torch.Tensor, y: torch.Tensor, objective: GeneratorObjective, *,
                     steps: int, lr_g: float, lr_z: float, padding: int, frozen_nets: tuple[nn.Module, ...],
                     flip: bool = True, comm: Comm | None = None) -> SynthesisResult:
    """N_G Adam steps (betas 0.5, 0.999, a new optimiser per round) on G and the trainable latents z.

    Each step: x = G(z), x_hat = augment(x) (differentiable crop, and flip unless `flip` is False), `objective(x_hat,
    y)`; the
    un-augmented x of the step with the lowest total (before that step's update) is kept (spec 5.2).
    `frozen_nets` are put in eval mode and get no parameter gradients. G is not re-initialised here.
    With `comm` (ferd.method.parallel) z and y are this rank's slices, generator gradients are averaged over ranks and
    the kept step is chosen on the rank-averaged loss.
    Returns the kept batch [B, C, H, W] in [0, 1], y, the last augmented batch and the kept step's parts.
    """
    if steps < 1:
        raise ConfigError("generator steps", steps, "an integer >= 1 for a generator-based method")
    opt = torch.optim.Adam([{"params": G.parameters(), "lr": lr_g}, {"params": [z], "lr": lr_z}],
                           betas=(0.5, 0.999))
    for net in frozen_nets:
        net.eval()
    G.train()
    best = torch.full((), float("inf"), device=z.device)
    best_x = best_parts = probe_x = None
    names: list[str] = []
    with frozen(*frozen_nets):
        for _ in range(steps):
            x = G(z)
            x_hat = augment(x, padding=padding, flip=flip)
            loss, parts = objective(x_hat, y)
            with torch.no_grad():  # on the device: no host sync per step
                score = loss.detach() if comm is None else comm.mean(loss.detach())  # ranks keep the same step
                names = list(parts)
                values = torch.stack([parts[k].detach().float() for k in names])
                if best_x is None:  # a non-finite first loss stays kept, and the loop's finiteness check names it
                    best_x, best_parts, best = x.detach().clone(), values, score
                else:
                    better = score < best
                    best = torch.where(better, score, best)
                    best_x = torch.where(better, x.detach(), best_x)
                    best_parts = torch.where(better, values, best_parts)
            probe_x = x_hat.detach()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if comm is not None:
                comm.average_grads(G.parameters())
            opt.step()
    return SynthesisResult(best_x.clamp(0, 1), y, probe_x, dict(zip(names, best_parts.tolist())))


def ferd_objective(teacher: nn.Module, student: nn.Module, bn: BNStatsLoss, *,
                   weights: tuple[float, float, float, float], use_fae: bool, ib_steps: int, ib_lr: float,
                   ib_beta: float, ib_noise: str, ikl_T2: float) -> GeneratorObjective:
    """FERD's generator objective (spec 5.3-5.4): w_bn L_bn + w_adv L_adv + w_oh L_oh + w_uni L_uni.

    Parts: gen_bn, gen_adv, gen_oh, gen_uni, gen_total, and `nonrobust` (the fraction of non-robust channels of
    the FAE mask, NaN without FAE: the health check of spec 8.0).
    """
    w_bn, w_adv, w_oh, w_uni = weights
    fae = use_fae and w_uni > 0

    def objective(xh: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with bn.recording():
            Z = teacher.features(xh)
            t = teacher.head(Z)
        l_bn = bn.loss()
        l_oh = F.cross_entropy(t, y)
        l_adv = -ikl(student(xh), t, teacher_prior(t, ikl_T2))
        if fae:
            l_uni, info = fae_term(teacher.head, Z, y, steps=ib_steps, lr=ib_lr, beta=ib_beta, noise=ib_noise)
            nonrobust = info["nonrobust_fraction"]
        else:
            l_uni = torch.zeros((), device=xh.device)
            nonrobust = torch.full((), float("nan"), device=xh.device)
        loss = w_bn * l_bn + w_adv * l_adv + w_oh * l_oh + w_uni * l_uni
        return loss, {"gen_bn": l_bn, "gen_adv": l_adv, "gen_oh": l_oh, "gen_uni": l_uni, "gen_total": loss,
                      "nonrobust": nonrobust}

    return objective


def ferd_round(teacher: nn.Module, student: nn.Module, G: nn.Module, bn: BNStatsLoss, y: torch.Tensor, *,
               nz: int, steps: int, lr_g: float, lr_z: float, weights: tuple[float, float, float, float],
               use_fae: bool, ib_steps: int, ib_lr: float, ib_beta: float, ib_noise: str, ikl_T2: float,
               padding: int, device: torch.device, reset_generator: bool = True, flip: bool = True,
               comm: Comm | None = None) -> SynthesisResult:
    """One FERD generation round (spec 5.9, generation stage). `weights` = (bn, adv, oh, uni).

    Fresh latents z ~ N(0, I) for the labels y; the generator is re-initialised first (the release, spec 5.2
    step 3) unless `reset_generator` is False (`generator_reset = "never"`: G keeps what it learnt across rounds).
    With `comm` (ferd.method.parallel) this rank optimises its slice of y and z; the result holds this rank's slice.
    """
    y = y.to(device)
    z = torch.randn(len(y), nz, device=device)
    if comm is not None:  # every rank draws the same y and z (same seed) and keeps its slice
        y, z = comm.shard(y), comm.shard(z)
    z.requires_grad_(True)
    if reset_generator:
        reinit_generator(G)
    objective = ferd_objective(teacher, student, bn, weights=weights, use_fae=use_fae, ib_steps=ib_steps,
                               ib_lr=ib_lr, ib_beta=ib_beta, ib_noise=ib_noise, ikl_T2=ikl_T2)
    return generation_round(G, z, y, objective, steps=steps, lr_g=lr_g, lr_z=lr_z, padding=padding,
                            frozen_nets=(teacher, student), flip=flip, comm=comm)
