"""Robustness-guided class reweighting: adversarial margins, per-class vulnerability D_c, class-weight rules.

After each synthesis round FERD attacks the teacher on the probe batch, measures each sample's margin, averages
-margin per class into D, and turns D into the class-sampling distribution p of the next epoch (spec 5.6).
Rules share one signature `rule(D, **params) -> p`; `class_weights` accepts a registered name or any callable.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ferd.errors import ConfigError

ABSENT_POLICIES = ("zero", "carry_forward")
TEACHER_MODES = ("eval", "train_leak")
Rule = Callable[..., torch.Tensor]


def margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """m_i = z_{i,y_i} - max_{j != y_i} z_{i,j} (spec 5.6 step 3); m_i < 0 iff sample i is misclassified.

    Shapes: logits [B, C] (C >= 2), y int [B] -> m [B].
    """
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ConfigError("logits", tuple(logits.shape), "a [B, C] tensor with C >= 2")
    true = logits.gather(1, y[:, None]).squeeze(1)  # [B]
    others = logits.scatter(1, y[:, None], float("-inf")).amax(1)  # [B]
    return true - others


def vulnerability(m: torch.Tensor, y: torch.Tensor, num_classes: int, absent_policy: str = "zero",
                  previous: torch.Tensor | None = None) -> torch.Tensor:
    """D_c = mean of -m_i over the samples with y_i = c (spec 5.6 step 4); larger means more fragile.

    Args:
        m: margins [B]; y: labels [B].
        absent_policy: "zero" gives an absent class D_c = 0 (release); "carry_forward" reuses `previous[c]`
            (0 when `previous` is None).
        previous: the last epoch's D [C], used by "carry_forward".
    Returns: D [C] float (same dtype as m).
    """
    sums, counts = class_sums(m, y, num_classes)
    return vulnerability_from_sums(sums, counts, absent_policy, previous)


def class_sums(m: torch.Tensor, y: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class sums of -m and sample counts [C] each: what ranks add up before dividing (ferd.method.parallel)."""
    counts = torch.bincount(y, minlength=num_classes)  # [C]
    if counts.numel() != num_classes:
        raise ConfigError("y", int(y.max()), f"labels in [0, {num_classes - 1}]")
    sums = torch.zeros(num_classes, dtype=m.dtype, device=m.device).index_add_(0, y, -m)  # [C]
    return sums, counts


def vulnerability_from_sums(sums: torch.Tensor, counts: torch.Tensor, absent_policy: str = "zero",
                            previous: torch.Tensor | None = None) -> torch.Tensor:
    """D [C] from per-class sums of -m and counts; an absent class gets 0 or `previous[c]` (see `vulnerability`)."""
    if absent_policy not in ABSENT_POLICIES:
        raise ConfigError("absent_policy", absent_policy, ABSENT_POLICIES)
    D = sums / counts.clamp_min(1).to(sums.dtype)
    fallback = torch.zeros_like(D)
    if absent_policy == "carry_forward" and previous is not None:
        fallback = previous.to(device=D.device, dtype=D.dtype)
    return torch.where(counts > 0, D, fallback)


def softmax_weights(D: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Paper rule p = softmax(D / tau) (spec 5.6, our default); shift invariant, increasing in D."""
    if not tau > 0:
        raise ConfigError("tau", tau, "a float > 0")
    return torch.softmax(D / tau, dim=0)


def minmax_weights(D: torch.Tensor, bounds: tuple[float, float] = (0.05, 0.2)) -> torch.Tensor:
    """Released-code rule (D2): rescale D into [low, high] by min-max, then normalise (spec 5.6).

    For C = 10 and the default bounds the largest weight is 0.2 / 0.65 = 0.3077.
    """
    low, high = bounds
    if not 0 < low <= high:
        raise ConfigError("bounds", bounds, "(low, high) with 0 < low <= high")
    scaled = (D - D.min()) / (D.max() - D.min() + 1e-8)
    p_hat = low + (high - low) * scaled
    return p_hat / p_hat.sum()


def uniform_weights(D: torch.Tensor) -> torch.Tensor:
    """p = U whatever D (the same as `use_reweighting = false`, spec 7.2)."""
    dtype = D.dtype if D.is_floating_point() else torch.float32
    return torch.full(D.shape, 1.0 / D.numel(), dtype=dtype, device=D.device)


CLASS_WEIGHT_RULES: dict[str, Rule] = {
    "softmax": softmax_weights,
    "minmax": minmax_weights,
    "uniform": uniform_weights,
}


def class_weights(D: torch.Tensor, rule: str | Rule = "softmax", **params) -> torch.Tensor:
    """Class-sampling distribution p [C] from vulnerabilities D [C] with a named or user-supplied rule.

    Args:
        rule: a key of `CLASS_WEIGHT_RULES` or any callable `rule(D, **params) -> p`.
        params: the rule's parameters (`tau` for softmax, `bounds` for minmax).
    Raises ConfigError for an unknown name or when the rule does not return a probability vector [C].
    """
    if isinstance(rule, str):
        if rule not in CLASS_WEIGHT_RULES:
            raise ConfigError("class_weight_rule", rule, sorted(CLASS_WEIGHT_RULES))
        fn = CLASS_WEIGHT_RULES[rule]
    elif callable(rule):
        fn = rule
    else:
        raise ConfigError("class_weight_rule", rule, "a rule name or a callable rule(D, **params) -> p")
    p = fn(D, **params)
    ok = (isinstance(p, torch.Tensor) and p.shape == D.shape and bool((p >= 0).all())
          and abs(float(p.sum()) - 1.0) < 1e-4)
    if not ok:
        raise ConfigError("class_weight_rule", getattr(fn, "__name__", fn),
                          "a rule returning a probability vector shaped like D")
    return p


def _modes(model: nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def _restore(model: nn.Module, modes: list[bool]) -> None:
    for m, training in zip(model.modules(), modes):
        m.training = training


def probe_vulnerability(teacher: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Callable,
                        num_classes: int, teacher_mode: str = "eval", absent_policy: str = "zero",
                        previous: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Attack the teacher on the probe batch, then measure margins and class vulnerability (spec 5.6).

    Args:
        teacher: the frozen teacher.
        x: probe batch [B, C, H, W] in [0, 1]; y: its sampled labels [B].
        attack: an attack built by the caller on `teacher`, called as `attack(x, y)` (PGD-20, CE, spec 5.6).
        teacher_mode: "eval" runs the margin forward in eval mode (BN buffers untouched); "train_leak"
            reproduces the release (D4): the margin forward runs in train mode, so BN running statistics are
            updated (and dropout is active). The teacher's modes are restored afterwards in both cases.
        absent_policy, previous: see `vulnerability`.
    Returns: (D [C], margins [B]).
    """
    if teacher_mode not in TEACHER_MODES:
        raise ConfigError("probe_teacher_mode", teacher_mode, TEACHER_MODES)
    x_adv = attack(x, y)
    modes = _modes(teacher)
    try:
        teacher.train(teacher_mode == "train_leak")
        with torch.no_grad():
            m = margins(teacher(x_adv), y)
    finally:
        _restore(teacher, modes)
    return vulnerability(m, y, num_classes, absent_policy, previous), m
