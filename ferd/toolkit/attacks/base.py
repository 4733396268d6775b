"""The attack interface and the one projected sign step every iterative attack shares (spec 2.1)."""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ferd.errors import ConfigError

Objective = Callable[[Tensor, Tensor], Tensor]  # (logits [B,C], x [B,...]) -> scalar to maximise


def project(x: Tensor, x_clean: Tensor, eps: float) -> Tensor:
    """Clip ``x`` to the L-inf ball of radius ``eps`` around ``x_clean``, then to [0, 1] (spec 2.1).

    Written as torchattacks writes it (clip the difference, add back), so results match it bit for bit.
    """
    delta = torch.clamp(x - x_clean, min=-eps, max=eps)
    return torch.clamp(x_clean + delta, min=0.0, max=1.0)


def sign_ascent(model: nn.Module, x_clean: Tensor, x_start: Tensor, objective: Objective,
                eps: float, alpha: float, steps: int) -> Tensor:
    """The projected sign-gradient step every iterative attack shares (spec 2.1, 5.7).

    ``x <- clip01(clip_eps(x + alpha * sign(grad_x objective(model(x), x))))``, ``steps`` times.
    Gradients are taken with respect to the input only (``torch.autograd.grad``), so the model's
    ``.grad`` fields are never touched. ``x_start`` is used as given: it is not clamped before the
    first step (spec 5.7), and with ``steps=0`` it is returned unchanged.

    Args:
        model: network returning logits [B, C]; its mode is the caller's business.
        x_clean: centre of the eps-ball, [B, ...] in [0, 1].
        x_start: first iterate, same shape.
        objective: ``objective(logits, x)`` -> scalar tensor to maximise (summed over the batch).
        eps, alpha: ball radius and step size in [0, 1] pixel units.
        steps: number of steps (>= 0).
    Returns:
        Detached adversarial batch, same shape as ``x_clean``.
    """
    x = x_start.detach()
    for _ in range(steps):
        x.requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(objective(model(x), x), x)
        x = project(x.detach() + alpha * grad.sign(), x_clean, eps).detach()
    return x.detach()


def ce_objective(logits: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy summed over the batch (untargeted PGD/FGSM ascend it)."""
    return F.cross_entropy(logits, y, reduction="sum")


def cw_objective(logits: Tensor, y: Tensor, kappa: float) -> Tensor:
    """CW margin objective ``-sum_b max(z_y - max_{j!=y} z_j + kappa, 0)`` (spec 2.1), to ascend."""
    true_logit = logits.gather(1, y[:, None]).squeeze(1)  # [B]
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return -torch.clamp(true_logit - others.max(dim=1).values + kappa, min=0.0).sum()


def kl_objective(logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """``sum_b KL(q(t_b) || q(f(x_b)))`` with q = softmax (spec 5.7, gamma = 0 part)."""
    return F.kl_div(F.log_softmax(logits, dim=1), F.log_softmax(teacher_logits, dim=1),
                    reduction="sum", log_target=True)


# ---------------------------------------------------------------- validation helpers
def _real(field: str, value: Any, lo: float, hi: float = math.inf, lo_open: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and value < hi
    if not ok:
        left = "(" if lo_open else "["
        right = "inf)" if hi == math.inf else f"{hi})"
        raise ConfigError(field, value, f"a real number in {left}{lo}, {right}")
    return float(value)


def _int(field: str, value: Any, lo: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise ConfigError(field, value, f"an integer >= {lo}")
    return value


def _choice(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(field, value, allowed)
    return value


def _bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field, value, "True or False")
    return value


def _iterative(eps: Any, alpha: Any, steps: Any) -> dict[str, Any]:
    """Checked hyperparameters every sign-ascent attack has."""
    return {"eps": _real("eps", eps, 0.0, 1.0), "alpha": _real("alpha", alpha, 0.0),
            "steps": _int("steps", steps)}


class Attack:
    """Base class: ``attack(x, target) -> x_adv`` with the model in eval mode (spec 2.1).

    Subclasses validate their arguments, pass them to ``super().__init__`` (which stores them and
    nothing else) and write ``forward(x, target)``. ``__call__`` checks the inputs, switches the model
    to ``eval()``, runs ``forward``, restores every submodule's previous ``training`` flag, and returns
    the detached result projected into [0, 1] and the eps-ball (eps = 0 for :class:`Clean`).
    """

    #: what ``target`` holds: "labels" (int64 [B]) or "logits" (float [B, C]).
    target_kind = "labels"

    def __init__(self, model: nn.Module, **hyperparameters: Any):
        if not isinstance(model, nn.Module):
            raise ConfigError("model", type(model).__name__, "a torch.nn.Module")
        self.model = model
        self._names = tuple(hyperparameters)
        for name, value in hyperparameters.items():
            setattr(self, name, value)
        self._generators: dict[torch.device, torch.Generator] = {}

    def _add_hyperparameters(self, **hyperparameters: Any) -> None:
        """For subclasses that extend a parent's hyperparameters (CWInf: kappa; UTAE: gamma)."""
        for name, value in hyperparameters.items():
            setattr(self, name, value)
        self._names += tuple(n for n in hyperparameters if n not in self._names)

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments (without the model), e.g. for a config record."""
        return {name: getattr(self, name) for name in self._names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{type(self).__name__}({args})"

    def generator(self, device: torch.device) -> torch.Generator:
        """This attack's generator on ``device``, seeded with ``seed`` on first use."""
        device = torch.device(device)
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def reset_rng(self) -> None:
        """Re-seed: the next calls draw the same random starts as a fresh attack object."""
        self._generators.clear()

    def gaussian(self, x: Tensor, std: float) -> Tensor:
        """``std * N(0, I)`` noise shaped like ``x``, from this attack's generator."""
        return std * torch.randn(x.shape, generator=self.generator(x.device), device=x.device,
                                 dtype=x.dtype)

    def uniform(self, x: Tensor, eps: float) -> Tensor:
        """``U(-eps, eps)`` noise shaped like ``x``, from this attack's generator."""
        return torch.empty_like(x).uniform_(-eps, eps, generator=self.generator(x.device))

    def _check_inputs(self, x: Tensor, target: Tensor) -> None:
        if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() < 2:
            raise ConfigError("x", getattr(x, "dtype", type(x)), "a float tensor [B, ...] in [0, 1]")
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ConfigError("x range", (x.min().item(), x.max().item()), "pixel values in [0, 1]")
        if not torch.is_tensor(target):
            raise ConfigError("target", type(target).__name__, "a torch.Tensor")
        if self.target_kind == "labels":
            if target.dtype != torch.int64 or target.shape != x.shape[:1]:
                raise ConfigError("target", f"{target.dtype} {tuple(target.shape)}",
                                  f"int64 class labels of shape ({x.shape[0]},)")
        elif not target.is_floating_point() or target.dim() != 2 or target.shape[0] != x.shape[0]:
            raise ConfigError("target", f"{target.dtype} {tuple(target.shape)}",
                              f"float teacher logits of shape ({x.shape[0]}, C)")

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        self._check_inputs(x, target)
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            x_adv = self.forward(x.detach(), target.detach())
        finally:
            for module, training in modes:
                module.training = training
        return project(x_adv.detach(), x.detach(), getattr(self, "eps", 0.0)).detach()

    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError
