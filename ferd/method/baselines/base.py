"""What every baseline shares: no robustness probe, KL-PGD as the inner maximisation, and one generator round.

`Baseline` is a `ferd.method.distill.Distiller` that never reweights (baselines.md 1: the class control of every
baseline here is "none" or its own rule) and attacks the student with plain KL-PGD (baselines.md 0). The
generator baselines (DFHL, DFARD, DERD) run FERD's one round, `ferd.method.synthesis.generation_round`, with their own
objectives.
"""
from __future__ import annotations

import torch

from ferd.method.distill import Distiller
from ferd.method.losses import kl_divergence
from ferd.method.synthesis import SynthesisResult, sample_labels
from ferd.toolkit.attacks import KLPGD, Attack
from ferd.toolkit.augment import augment

# RSLAD's weights (baselines.md 6.1, 7.1): 5/6 on the adversarial term, 1/6 on the clean one (FERD reverses them).
RSLAD_ADV, RSLAD_NAT = 5 / 6, 1 / 6


class Baseline(Distiller):
    """A Distiller without the robustness probe and with KL-PGD as the student attack (baselines.md 1)."""

    label = "baseline"  # the name book tables print; approximations say so ("DFARD (approx.)")
    needs = frozenset({"generator", "pool"})  # no robustness probe
    speed_switches = frozenset({"channels_last", "fused_optim", "pool_on_device"})  # no bf16, compile or DDP path

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
        return augment(x, padding=self.d.aug_padding, flip=self.d.aug_flip), y


def kl_per_sample(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """KL(q(t_b) || q(s_b)) per sample [B]; the teacher side is detached."""
    return kl_divergence(teacher_logits.detach(), student_logits, reduction="none")
