"""FERD's losses: KL helpers, soft cross-entropy, IKL with its priors, the uniformity KL, the DeepInversion
BatchNorm-statistics loss and the student loss.

All logits are [B, C]. Reductions over the batch are means unless a function says otherwise.
Spec: 5.3 (generator terms), 5.4(c) (uniformity), 5.8 (IKL and the student loss).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ferd.errors import ConfigError

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "none":
        return per_sample
    raise ConfigError("reduction", reduction, _REDUCTIONS)


def kl_divergence(target_logits: torch.Tensor, input_logits: torch.Tensor,
                  reduction: str = "mean") -> torch.Tensor:
    """KL(q(target) || q(input)) per sample, from logits [B, C]; reduced over the batch ("mean"|"sum"|"none").

    Gradients flow into both arguments; detach the target yourself where it is a teacher. Spec 0.2, 5.8.
    """
    kl = F.kl_div(F.log_softmax(input_logits, dim=1), F.log_softmax(target_logits, dim=1),
                  reduction="none", log_target=True).sum(1)  # [B]
    return _reduce(kl, reduction)


def entropy(logits: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Shannon entropy H(q(logits)) in nats per sample [B], reduced over the batch (spec 5.8: SCE = KL + H)."""
    logp = F.log_softmax(logits, dim=1)
    return _reduce(-(logp.exp() * logp).sum(1), reduction)


def soft_cross_entropy(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """SCE(s, t) = mean_b -sum_c q_c(t_b) log q_c(s_b), temperature 1 (spec 5.8).

    The teacher distribution q(t) is detached, as in the release's `dkl_loss`.
    Shapes: s, t [B, C] -> scalar.
    """
    return -(F.softmax(t, dim=1).detach() * F.log_softmax(s, dim=1)).sum(1).mean()


def onehot_prior(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One-hot IKL prior e_y [B, C] from int labels y [B] (the release's "GI" mode, spec 5.8, D5)."""
    return F.one_hot(y, num_classes).float()


def teacher_prior(t: torch.Tensor, T2: float = 100.0) -> torch.Tensor:
    """Sample-wise IKL prior q(t / T2) [B, C] (spec 5.3, 5.8).

    Not detached: the release's `dkl_loss` lets gradients flow through this prior in the generator's
    adversarial term; wrap the call in `torch.no_grad()` where the teacher must carry no gradient.
    """
    if T2 <= 0:
        raise ConfigError("T2", T2, "a float > 0")
    return F.softmax(t / T2, dim=1)


def ikl_pairwise(s: torch.Tensor, t: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Weighted MSE on pairwise logit differences, the first IKL term (spec 5.8).

    (1/4) sum_b sum_{j,k} pi_bj pi_bk [(t_bj - t_bk) - (s_bj - s_bk)]^2 / sum_b sum_{j,k} pi_bj pi_bk, in O(BC):
    with d = t - s and S_b = sum_j pi_bj, sum_{j,k} pi_j pi_k (d_j - d_k)^2 = 2 S sum_j pi_j (d_j - mu)^2,
    mu = sum_j pi_j d_j / S. The centred form is exactly 0 for a one-hot prior and avoids cancellation.
    Shapes: s, t, prior [B, C] -> scalar. Gradients flow into s, t and prior (release behaviour).
    """
    d = t - s  # [B, C]
    mass = prior.sum(1, keepdim=True)  # [B, 1]
    mu = (prior * d).sum(1, keepdim=True) / mass  # [B, 1]
    pair_sum = 2.0 * mass.squeeze(1) * (prior * (d - mu).square()).sum(1)  # [B]
    return 0.25 * pair_sum.sum() / mass.square().sum()


def ikl(s: torch.Tensor, t: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Improved / decoupled KL of Cui et al.: weighted pairwise MSE + soft cross-entropy (spec 5.8).

    Args:
        s: student logits [B, C].
        t: teacher logits [B, C]. Not detached in the pairwise term (the generator's adversarial term, spec 5.3,
           back-propagates through it); detached in the SCE term. Pass no-grad logits for the student loss.
        prior: pair weights pi [B, C], rows summing to 1 (`onehot_prior` or `teacher_prior`).
    Returns: scalar. With a one-hot prior this equals `soft_cross_entropy(s, t)` exactly.
    """
    if s.shape != t.shape or prior.shape != s.shape or s.dim() != 2:
        raise ConfigError("ikl shapes", (tuple(s.shape), tuple(t.shape), tuple(prior.shape)),
                          "s, t and prior all [B, C]")
    return ikl_pairwise(s, t, prior) + soft_cross_entropy(s, t)


def uniform_kl(logits: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """KL(U || q(logits_b)) with U = 1/C, per sample, reduced over the batch (spec 5.4(c), 5.7).

    = -log C - (1/C) sum_c log q_c(logits_b) = logsumexp(z_b - mean(z_b)) - log C >= 0. The centred form
    is exactly 0 for constant logits (whenever z - mean(z) rounds to 0, e.g. all-zero logits).
    Shapes: logits [B, C] -> scalar (or [B] for reduction "none").
    """
    log_c = torch.log(torch.tensor(float(logits.shape[1]), dtype=logits.dtype, device=logits.device))
    centred = logits - logits.mean(dim=1, keepdim=True)  # [B, C]
    per_sample = torch.logsumexp(centred, dim=1) - log_c  # [B]
    return _reduce(per_sample, reduction)


class BNStatsLoss:
    """DeepInversion BatchNorm-statistics loss on a teacher (spec 5.3).

    Registers a forward hook on every `BatchNorm2d` of `teacher`. Inside `with bn.recording():` each hook reads
    the layer's input and stores ||mu - running_mean||_2 + ||biased var - running_var||_2 over (B, H, W);
    outside it the hooks record nothing (IB fit and Z_nr pass, spec 5.3 [decision]). `loss()` sums the
    layers' terms from the last recorded forward, with gradients to the input.
    """

    def __init__(self, teacher: nn.Module):
        layers = [m for m in teacher.modules() if isinstance(m, nn.BatchNorm2d)]
        for m in layers:
            if m.running_mean is None or m.running_var is None:
                raise ConfigError("teacher BatchNorm2d track_running_stats", False,
                                  "BatchNorm2d layers with running statistics")
        self._recording = False
        self._terms: dict[int, torch.Tensor] = {}
        self._handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(layers)]

    def _hook(self, index: int) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def hook(module: nn.BatchNorm2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if not self._recording:
                return
            x = inputs[0]
            mean = x.mean(dim=(0, 2, 3))  # [K]
            var = x.var(dim=(0, 2, 3), unbiased=False)  # [K]
            self._terms[index] = (torch.linalg.vector_norm(mean - module.running_mean)
                                  + torch.linalg.vector_norm(var - module.running_var))
        return hook

    @property
    def num_layers(self) -> int:
        """Number of hooked BatchNorm2d layers."""
        return len(self._handles)

    @contextlib.contextmanager
    def recording(self) -> Iterator["BNStatsLoss"]:
        """Record statistics of the forwards run inside this block; earlier records are dropped on entry."""
        self._terms = {}
        self._recording = True
        try:
            yield self
        finally:
            self._recording = False

    def loss(self) -> torch.Tensor:
        """Sum over BN layers of the recorded terms (scalar); 0 for a teacher without BatchNorm2d."""
        if not self._handles:
            return torch.zeros(())
        if not self._terms:
            raise RuntimeError("BNStatsLoss.loss(): no forward was recorded; run the teacher inside "
                               "`with bn_loss.recording():` first")
        return torch.stack(list(self._terms.values())).sum()

    def remove(self) -> None:
        """Remove the hooks from the teacher."""
        for h in self._handles:
            h.remove()
        self._handles, self._terms = [], {}


class StudentLoss(NamedTuple):
    """The student objective and its two parts (each with gradients)."""
    total: torch.Tensor
    clean: torch.Tensor
    adv: torch.Tensor


def student_loss(s_clean: torch.Tensor, s_adv: torch.Tensor, t: torch.Tensor, prior: torch.Tensor,
                 lambda_clean: float = 5 / 6, lambda_adv: float = 1 / 6) -> StudentLoss:
    """L_S = lambda_clean IKL(f_S(x_F), t) + lambda_adv IKL(f_S(x_U), t), t = f_T(x_F) (spec 5.8).

    Args:
        s_clean, s_adv: student logits on the clean and the adversarial batch [B, C].
        t: teacher logits on the clean batch [B, C] (computed without grad).
        prior: IKL prior [B, C]: `onehot_prior(y, C)` (default mode, = soft CE) or `teacher_prior(t, T2)`.
    """
    clean = ikl(s_clean, t, prior)
    adv = ikl(s_adv, t, prior)
    return StudentLoss(lambda_clean * clean + lambda_adv * adv, clean, adv)


__all__ = ["kl_divergence", "entropy", "soft_cross_entropy", "onehot_prior", "teacher_prior", "ikl_pairwise",
           "ikl", "uniform_kl", "BNStatsLoss", "StudentLoss", "student_loss"]
