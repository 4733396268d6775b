"""Gradient attacks: Clean (identity), FGSM, PGD, targeted PGD, CW-inf and KL-PGD (spec 2.1, 5.7)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ferd.toolkit.attacks.base import (
    Attack,
    _bool,
    _choice,
    _int,
    _iterative,
    _real,
    ce_objective,
    cw_objective,
    kl_objective,
    sign_ascent,
)


class Clean(Attack):
    """Identity attack: clean accuracy through the same evaluation path (spec 2.1, row "Clean").

    Threat model: none. Args: ``model``. Shapes: x [B, C, H, W] in [0, 1], y int64 [B] -> x.

    Example:
        >>> x_adv = Clean(model)(x, y)  # equals x
    """

    def __init__(self, model: nn.Module):
        super().__init__(model)

    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        return x.clone()


class FGSM(Attack):
    """FGSM: one signed-gradient step of size eps on the cross-entropy (spec 2.1, 8).

    Paper: Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015,
    https://arxiv.org/abs/1412.6572. Threat model: white-box, L-inf, untargeted, true labels.

    Args:
        model: network returning logits.
        eps: L-inf budget in (0, 1); spec 8 uses 0.1 (paper profile 8/255).
        start: "gaussian" (default; start at x + 0.001 * N(0, I), as Fair-ARD/ABSLD) or "none"
            (start at x, as LetheSec/DFHL-RS-Attack).
        seed: seed of the start noise (default 0).
    Shapes: x float [B, C, H, W] in [0, 1], y int64 [B] -> x_adv like x.

    Example:
        >>> x_adv = FGSM(model, eps=0.1)(x, y)
    """

    def __init__(self, model: nn.Module, eps: float, start: str = "gaussian", seed: int = 0):
        super().__init__(model, eps=_real("eps", eps, 0.0, 1.0),
                         start=_choice("start", start, ("gaussian", "none")), seed=_int("seed", seed))

    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        x_start = x + self.gaussian(x, 0.001) if self.start == "gaussian" else x
        return sign_ascent(self.model, x, x_start, lambda z, _: ce_objective(z, target),
                           self.eps, self.eps, 1)


class PGD(Attack):
    """PGD: projected sign-gradient ascent from a uniform random start (spec 2.1, 8).

    Paper: Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018,
    https://arxiv.org/abs/1706.06083. Threat model: white-box, L-inf, untargeted, true labels.

    Args:
        model: network returning logits.
        eps: L-inf budget in (0, 1); spec 8: 0.1.
        alpha: step size > 0; spec 8: 0.025 (= eps/4, the paper's 2/255 : 8/255).
        steps: number of steps >= 0; the evaluation uses 20.
        random_start: start at clip01(x + U(-eps, eps)) (default True) or at x.
        loss: "ce" (cross-entropy, default) or "cw" (CW margin with kappa = 0; see :class:`CWInf`).
        seed: seed of the random start (default 0).
    Shapes: x float [B, C, H, W] in [0, 1], y int64 [B] -> x_adv like x.

    Example:
        >>> x_adv = PGD(model, eps=0.1, alpha=0.025, steps=20)(x, y)
    """

    def __init__(self, model: nn.Module, eps: float, alpha: float, steps: int,
                 random_start: bool = True, loss: str = "ce", seed: int = 0):
        super().__init__(model, **_iterative(eps, alpha, steps),
                         random_start=_bool("random_start", random_start),
                         loss=_choice("loss", loss, ("ce", "cw")), seed=_int("seed", seed))

    def start(self, x: Tensor) -> Tensor:
        """Uniform start in the eps-ball, clamped to [0, 1] (spec 2.1)."""
        return torch.clamp(x + self.uniform(x, self.eps), 0.0, 1.0) if self.random_start else x

    def objective(self, logits: Tensor, y: Tensor) -> Tensor:
        """The scalar the attack maximises."""
        if self.loss == "cw":
            return cw_objective(logits, y, getattr(self, "kappa", 0.0))
        return ce_objective(logits, y)

    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        return sign_ascent(self.model, x, self.start(x), lambda z, _: self.objective(z, target),
                           self.eps, self.alpha, self.steps)


class TargetedPGD(PGD):
    """Targeted PGD: descends the cross-entropy towards ``target`` classes (spec 9, Fig. 1 right).

    Paper: Madry et al., ICLR 2018, https://arxiv.org/abs/1706.06083 (targeted variant).
    Threat model: white-box, L-inf, targeted; ``target`` holds the class each image should reach.
    Args as :class:`PGD` without ``loss``. Shapes: x [B, C, H, W], target int64 [B] -> x_adv like x.

    Example:
        >>> x_adv = TargetedPGD(model, eps=0.1, alpha=0.025, steps=20)(x, torch.full_like(y, 9))
    """

    def __init__(self, model: nn.Module, eps: float, alpha: float, steps: int,
                 random_start: bool = True, seed: int = 0):
        Attack.__init__(self, model, **_iterative(eps, alpha, steps),
                        random_start=_bool("random_start", random_start), seed=_int("seed", seed))

    def objective(self, logits: Tensor, target: Tensor) -> Tensor:
        return -ce_objective(logits, target)


class CWInf(PGD):
    """CW-inf: PGD on the Carlini-Wagner margin loss with confidence kappa (spec 2.1, 8).

    Paper: Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017,
    https://arxiv.org/abs/1608.04644; L-inf PGD form as in the Fair-ARD / ABSLD evaluations.
    Threat model: white-box, L-inf, untargeted, true labels. Objective (ascended):
    ``J = -sum_b max(z_y - max_{j!=y} z_j + kappa, 0)``.

    Args:
        model: network returning logits.
        eps: L-inf budget in (0, 1); spec 8: 0.1.
        alpha: step size > 0; spec 8: 0.025.
        steps: number of steps >= 0; the evaluation uses 20 (switch: 100 with kappa = 0).
        kappa: confidence >= 0 (default 50.0).
        random_start: uniform start as PGD (default True).
        seed: seed of the random start (default 0).
    Shapes: x float [B, C, H, W] in [0, 1], y int64 [B] -> x_adv like x.

    Example:
        >>> x_adv = CWInf(model, eps=0.1, alpha=0.025, steps=20, kappa=50.0)(x, y)
    """

    def __init__(self, model: nn.Module, eps: float, alpha: float, steps: int,
                 kappa: float = 50.0, random_start: bool = True, seed: int = 0):
        super().__init__(model, eps, alpha, steps, random_start=random_start, loss="cw", seed=seed)
        self._add_hyperparameters(kappa=_real("kappa", kappa, 0.0, lo_open=False))


class KLPGD(Attack):
    """KL-PGD: maximise ``sum_b KL(q(t_b) || q(f(x_b)))`` from x + 0.001 N (spec 5.7, gamma = 0).

    Paper: Zi et al., "Revisiting Adversarial Robustness Distillation: Robust Soft Labels Make Student
    Better" (RSLAD), ICCV 2021, https://arxiv.org/abs/2108.07969. Threat model: white-box, L-inf;
    ``target`` holds the teacher's clean logits t (no gradient). The start is not clamped before the
    first step (spec 5.7). ``ferd.method.utae.UTAE`` subclasses this and overrides :meth:`objective`.

    Args:
        model: the attacked network (the student, spec 5.7).
        eps: L-inf budget in (0, 1); spec 8: 0.1.
        alpha: step size > 0; spec 8: 0.025.
        steps: number of steps >= 0; training uses 10.
        start_noise: std of the Gaussian start noise >= 0 (default 0.001).
        seed: seed of the start noise (default 0).
    Shapes: x float [B, C, H, W] in [0, 1], teacher logits float [B, K] -> x_adv like x.

    Example:
        >>> x_adv = KLPGD(student, eps=0.1, alpha=0.025, steps=10)(x, teacher(x).detach())
    """

    target_kind = "logits"

    def __init__(self, model: nn.Module, eps: float, alpha: float, steps: int,
                 start_noise: float = 0.001, seed: int = 0):
        super().__init__(model, **_iterative(eps, alpha, steps),
                         start_noise=_real("start_noise", start_noise, 0.0, lo_open=False),
                         seed=_int("seed", seed))

    def start(self, x: Tensor) -> Tensor:
        """x + start_noise * N(0, I), deliberately not clamped (spec 5.7)."""
        return x + self.gaussian(x, self.start_noise)

    def objective(self, logits: Tensor, teacher_logits: Tensor) -> Tensor:
        """The scalar the attack maximises; UTAE subtracts gamma * sum_b KL(U || q(f(x_b)))."""
        return kl_objective(logits, teacher_logits)

    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        return sign_ascent(self.model, x, self.start(x), lambda z, _: self.objective(z, target),
                           self.eps, self.alpha, self.steps)
