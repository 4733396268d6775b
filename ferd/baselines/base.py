"""What every baseline shares: no robustness probe, KL-PGD as the inner maximisation, and one generator round.

`Baseline` is a `ferd.distill.Distiller` that never reweights (baselines.md 1: the class control of every
baseline here is "none" or its own rule), attacks the student with plain KL-PGD (baselines.md 0) and offers
`generation_round`: N_G Adam steps on a generator and its latents against a caller's objective, keeping the
lowest-loss un-augmented batch (the skeleton of method.md 5.2 that DFHL, DFARD and DERD share).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from ferd.attacks import KLPGD, Attack
from ferd.augment import augment
from ferd.distill import Distiller
from ferd.errors import ConfigError
from ferd.losses import kl_divergence
from ferd.synthesis import SynthesisResult, frozen, sample_labels

# objective(x_hat [B, C, H, W], y [B]) -> (total loss, {name: scalar tensor}) for one generator step
GeneratorObjective = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]

# RSLAD's weights (baselines.md 6.1, 7.1): 5/6 on the adversarial term, 1/6 on the clean one (FERD reverses them).
RSLAD_ADV, RSLAD_NAT = 5 / 6, 1 / 6


def generation_round(G: nn.Module, z: torch.Tensor, y: torch.Tensor, objective: GeneratorObjective, *,
                     steps: int, lr_g: float, lr_z: float, padding: int, frozen_nets: tuple[nn.Module, ...]
                     ) -> SynthesisResult:
    """N_G Adam steps (betas 0.5, 0.999) on G and the trainable latents z; keep the lowest-loss batch.

    Each step: x = G(z), x_hat = augment(x) (differentiable crop + flip), `objective(x_hat, y)`; the
    un-augmented x of the step with the lowest total (before that step's update) is kept, as in method.md 5.2.
    `frozen_nets` are put in eval mode and get no parameter gradients. G is not re-initialised here: callers
    that reset per epoch call `reinit_generator` first (DFARD, DERD); DFHL keeps its generator.
    Returns the kept batch [B, C, H, W] in [0, 1], y, the last augmented batch and the kept step's parts.
    """
    if steps < 1:
        raise ConfigError("generator steps", steps, "an integer >= 1 for a generator baseline")
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
            x_hat = augment(x, padding=padding)
            loss, parts = objective(x_hat, y)
            with torch.no_grad():  # on the device: no host sync per step
                names = list(parts)
                values = torch.stack([parts[k].detach().float() for k in names])
                if best_x is None:
                    best_x, best_parts, best = x.detach().clone(), values, loss.detach()
                else:
                    better = loss < best
                    best = torch.where(better, loss.detach(), best)
                    best_x = torch.where(better, x.detach(), best_x)
                    best_parts = torch.where(better, values, best_parts)
            probe_x = x_hat.detach()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return SynthesisResult(best_x.clamp(0, 1), y, probe_x, dict(zip(names, best_parts.tolist())))


class Baseline(Distiller):
    """A Distiller without the robustness probe and with KL-PGD as the student attack (baselines.md 1)."""

    label = "baseline"  # the name book tables print; approximations say so ("DFARD (approx.)")

    def probe(self, res: SynthesisResult, epoch: int) -> dict[str, float]:
        """Baselines do not reweight classes: p stays uniform whatever `use_reweighting` says."""
        return {}

    def make_attack(self, epoch: int, step: int) -> Attack:
        """KL-PGD on the student against the teacher's clean logits (baselines.md 0), seeded per step."""
        a, d = self.cfg.attack, self.d
        if self.student_attack is not None:
            return self.student_attack(self.student, a.eps, a.alpha, d.utae_steps, self._seed(epoch, step))
        return KLPGD(self.student, eps=a.eps, alpha=a.alpha, steps=d.utae_steps, seed=self._seed(epoch, step))

    def uniform_labels(self) -> torch.Tensor:
        """B labels drawn uniformly over the classes (sorted), on the run's device."""
        return sample_labels(torch.full((self.C,), 1.0 / self.C), self.d.batch_size).to(self.device)

    def augmented_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next training batch after the common crop + flip augmentation (method.md 5.9), and its labels."""
        x, y = self.next_batch()
        return augment(x, padding=self.d.aug_padding), y


def kl_per_sample(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """KL(q(t_b) || q(s_b)) per sample [B]; the teacher side is detached."""
    return kl_divergence(teacher_logits.detach(), student_logits, reduction="none")
