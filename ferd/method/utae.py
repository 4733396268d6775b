"""Uniform-target adversarial examples (UTAE): KL-PGD with a pull of the prediction towards uniform.

`UTAE(student, eps, alpha, steps, gamma)(x_F, t)` builds x_U for the student loss (spec 5.7, 5.9). It is
`ferd.toolkit.attacks.KLPGD` with one extra term in the objective; with gamma = 0 it is KL-PGD exactly (D1, the release).
"""
from __future__ import annotations

import torch
from torch import nn

from ferd.errors import ConfigError
from ferd.method.losses import uniform_kl
from ferd.toolkit.attacks import KLPGD


class UTAE(KLPGD):
    """Maximise J(x) = sum_b KL(q(t_b) || q(f(x_b))) - gamma * sum_b KL(U || q(f(x_b))), U = 1/C (spec 5.7).

    Paper: FERD (write-up); uniform target from BAT (Sun et al., AAAI 2023). Threat model: white-box, L-inf
    around the clean pool sample x_F; the attacked network is the student (D6); `target` holds the teacher's
    clean logits t (no gradient). Start x_F + start_noise * N(0, I), not clamped; sign steps, projection, clamp.

    Args:
        model: the attacked network (the student).
        eps: L-inf budget in (0, 1) (paper 8/255, CPU profile 0.1).
        alpha: step size > 0 (paper 2/255).
        steps: number of steps >= 0 (10).
        gamma: weight >= 0 of the uniform term; 0 reproduces the release (D1), our default is 0.3 (spec 7.1).
        start_noise: std of the Gaussian start (0.001).
        seed: seed of the start noise.
    Shapes: x [B, C, H, W] in [0, 1], teacher logits [B, K] -> x_U like x.

    Example:
        >>> x_u = UTAE(student, eps=8/255, alpha=2/255, steps=10, gamma=0.3)(x_f, teacher(x_f).detach())
    """

    def __init__(self, model: nn.Module, eps: float, alpha: float, steps: int, gamma: float = 0.3,
                 start_noise: float = 0.001, seed: int = 0):
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 <= gamma < float("inf"):
            raise ConfigError("gamma", gamma, "a real number >= 0")
        super().__init__(model, eps, alpha, steps, start_noise=start_noise, seed=seed)
        self._add_hyperparameters(gamma=float(gamma))

    def objective(self, logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        """KL-PGD's objective minus gamma * sum_b KL(U || q(logits_b)); both terms summed over the batch."""
        kl = super().objective(logits, teacher_logits)
        if self.gamma == 0:  # the release (D1): identical to KL-PGD, bit for bit
            return kl
        return kl - self.gamma * uniform_kl(logits, reduction="sum")
