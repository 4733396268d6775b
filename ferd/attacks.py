"""White-box L-inf attacks with one interface: ``x_adv = attack(x, target)`` (spec 2.1, 5.7).

Every attack is a subclass of :class:`Attack`. The constructor checks and stores hyperparameters;
``__call__`` switches the model to ``eval()``, runs ``forward`` and restores every submodule's mode.
PGD, CW-inf, KL-PGD (and ``ferd.utae.UTAE``) share one projected sign step, :func:`sign_ascent`;
each of them only says what it maximises (``objective``) and where it starts (``start``).
Random starts come from a ``torch.Generator`` seeded with ``seed`` on the input's device.

Run ``build_attack("pgd", model, eps=0.1, alpha=0.025, steps=20)`` or construct a class directly.
"""
from __future__ import annotations

import inspect
import math
import sys
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
    first step (spec 5.7). ``ferd.utae.UTAE`` subclasses this and overrides :meth:`objective`.

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


class AutoAttack(Attack):
    """AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square) through the reference code (spec 2.1).

    Paper: Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
    parameter-free attacks", ICML 2020, https://arxiv.org/abs/2003.01690. Implementation: the
    ``pyautoattack`` package (pip ``pyautoattack==0.2.0``, import name ``pyautoattack``).
    Threat model: white-box (plus the black-box Square), L-inf, untargeted success, true labels.

    Args:
        model: network returning logits (at least 4 classes: the DLR losses need them).
        eps: L-inf budget in (0, 1); spec 8: 0.1.
        n_target_classes: targets of APGD-T and FAB-T (default 9 whatever C is, spec 2.1 decision);
            capped at C - 1 for models with fewer than 10 classes.
        seed: seed handed to every sub-attack (default 0). The reference code re-seeds torch's
            global generator; we run it inside ``torch.random.fork_rng``, so the caller's is untouched.
        version: "standard" (default), "plus" or "rand".
        n_iter: APGD and FAB iterations (default 100, as standard; lower only for smoke tests).
        n_queries: Square queries (default 5000, as standard; lower only for smoke tests).
    Shapes: x float [B, C, H, W] in [0, 1], y int64 [B] -> x_adv like x. Points the model already
    misclassifies come back unchanged.

    Example:
        >>> x_adv = AutoAttack(model, eps=0.1)(x, y)
    """

    def __init__(self, model: nn.Module, eps: float, n_target_classes: int = 9, seed: int = 0,
                 version: str = "standard", n_iter: int = 100, n_queries: int = 5000):
        super().__init__(model, eps=_real("eps", eps, 0.0, 1.0),
                         n_target_classes=_int("n_target_classes", n_target_classes, 1),
                         seed=_int("seed", seed),
                         version=_choice("version", version, ("standard", "plus", "rand")),
                         n_iter=_int("n_iter", n_iter, 1), n_queries=_int("n_queries", n_queries, 1))

    def _reference(self, x: Tensor, num_classes: int):
        from pyautoattack import AutoAttack as ReferenceAutoAttack

        if num_classes < 4:
            raise ConfigError("num_classes", num_classes, ">= 4 (AutoAttack's DLR losses)")
        aa = ReferenceAutoAttack(self.model, device=x.device, eps=self.eps, norm="Linf",
                                 seed=self.seed, version=self.version)
        aa.verbose = False
        targets = min(self.n_target_classes, num_classes - 1)
        aa.apgd_targeted.n_target_classes = targets
        aa.fab.n_target_classes = targets
        for apgd in (aa.apgd, aa.apgd_targeted):  # the reference derives its schedule in __init__
            apgd.n_iter = apgd.n_iter_orig = self.n_iter
            apgd.n_iter_2 = max(int(0.22 * self.n_iter), 1)
            apgd.n_iter_min = max(int(0.06 * self.n_iter), 1)
            apgd.size_decr = max(int(0.03 * self.n_iter), 1)
        aa.fab.n_iter = self.n_iter
        aa.square.n_queries = self.n_queries
        return aa

    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        if x.shape[0] == 0:
            return x.clone()
        with torch.no_grad():
            num_classes = self.model(x[:1]).shape[1]
        aa = self._reference(x, num_classes)
        devices = [x.device] if x.device.type == "cuda" else []
        trace = sys.gettrace()  # the reference's dynamic-defence check resets sys.settrace
        # the reference calls .backward(): freeze the parameters so their .grad stays untouched
        frozen = [(p, p.requires_grad) for p in self.model.parameters()]
        try:
            for p, _ in frozen:
                p.requires_grad_(False)
            with torch.random.fork_rng(devices=devices):
                x_adv, _ = aa.run_standard_evaluation(x, target, batch_size=x.shape[0])
        finally:
            for p, requires_grad in frozen:
                p.requires_grad_(requires_grad)
            sys.settrace(trace)
        return x_adv


ATTACKS: dict[str, type[Attack]] = {
    "clean": Clean, "fgsm": FGSM, "pgd": PGD, "cw": CWInf, "kl_pgd": KLPGD, "aa": AutoAttack,
}


def build_attack(name: str, model: nn.Module, **params: Any) -> Attack:
    """Construct an attack by name: "clean", "fgsm", "pgd", "cw", "kl_pgd" or "aa" (spec 2.1).

    Example:
        >>> build_attack("cw", model, eps=0.1, alpha=0.025, steps=20)
    """
    if name not in ATTACKS:
        raise ConfigError("attack name", name, tuple(ATTACKS))
    cls = ATTACKS[name]
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "model")]
    for key in params:
        if key not in allowed:
            raise ConfigError(f"{name} parameter", key, allowed)
    return cls(model, **params)
