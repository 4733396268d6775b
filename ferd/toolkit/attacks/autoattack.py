"""AutoAttack (standard) through the reference implementation, `pyautoattack` (spec 2.1)."""
from __future__ import annotations

import sys

import torch
from torch import Tensor, nn

from ferd.errors import ConfigError
from ferd.toolkit.attacks.base import Attack, _choice, _int, _real


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
