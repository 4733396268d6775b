"""White-box L-inf attacks with one interface: ``x_adv = attack(x, target)`` (spec 2.1, 5.7).

Every attack is a subclass of :class:`Attack`. The constructor checks and stores hyperparameters;
``__call__`` switches the model to ``eval()``, runs ``forward`` and restores every submodule's mode.
PGD, CW-inf, KL-PGD (and ``ferd.method.utae.UTAE``) share one projected sign step, :func:`sign_ascent`;
each of them only says what it maximises (``objective``) and where it starts (``start``).
Random starts come from a ``torch.Generator`` seeded with ``seed`` on the input's device.

Run ``build_attack("pgd", model, eps=0.1, alpha=0.025, steps=20)`` or construct a class directly.
"""
from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from ferd.errors import ConfigError
from ferd.toolkit.attacks.autoattack import AutoAttack
from ferd.toolkit.attacks.base import Attack, Objective, ce_objective, cw_objective, kl_objective, project, sign_ascent
from ferd.toolkit.attacks.gradient import FGSM, KLPGD, PGD, Clean, CWInf, TargetedPGD

ATTACKS: dict[str, type[Attack]] = {
    "clean": Clean, "fgsm": FGSM, "pgd": PGD, "cw": CWInf, "kl_pgd": KLPGD, "aa": AutoAttack,
}
EVAL_ATTACKS = ("clean", "fgsm", "pgd", "cw", "aa")  # the evaluation protocol (spec 2.1), in table order
ATTACK_LABELS = {"clean": "Clean", "fgsm": "FGSM", "pgd": "PGD", "cw": "CW∞", "aa": "AA"}  # table headers


def attack_label(name: str, pgd_steps: int = 20, cw_steps: int = 20) -> str:
    """Display name with the step count where it matters: 'pgd' -> 'PGD-20', 'cw' -> 'CW∞-20'."""
    steps = {"pgd": pgd_steps, "cw": cw_steps}
    label = ATTACK_LABELS.get(name, name)
    return f"{label}-{steps[name]}" if name in steps else label



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


__all__ = ["Attack", "Objective", "sign_ascent", "project", "ce_objective", "cw_objective", "kl_objective",
           "Clean", "FGSM", "PGD", "TargetedPGD", "CWInf", "KLPGD", "AutoAttack", "ATTACKS", "EVAL_ATTACKS", "ATTACK_LABELS",
           "attack_label", "build_attack"]
