"""DFARD (approx.): data-free adversarial robustness distillation with AGB and ITA, in their spirit only.

APPROXIMATION (baselines.md 4): the equations of DFARD's Adaptive Generator Balance and Interactive Temperature
Adjustment were not available to us; both parts below are our design, and every result must be labelled
"DFARD (approx.)". Source paper: Wang et al., "Out of Thin Air: Exploring Data-Free Adversarial Robustness
Distillation", AAAI 2024, arXiv 2303.11611 (no public code).

- Generator: reset per epoch, uniform labels, N_G Adam steps on w_bn L_bn + w_oh L_oh + w_adv L_adv with
  L_adv = -KL(q(t) || q(s)). AGB: each w_k = mean(m) / m_k from moving averages m_k of |L_k| that persist across
  epochs (`dfard_agb`; off gives the fixed (5, 1, 1) of `gen_loss_weights`).
- Student: tau^2 [5/6 KL(q^tau(t) || q^tau(s(x'))) + 1/6 KL(q^tau(t) || q^tau(s(x)))], x' = KL-PGD at tau = 1.
  ITA: after each epoch tau <- clip(tau + step * sign(g), 1, 10), g = dL_S/dtau averaged over the epoch's last
  10 student batches (`dfard_ita`, `dfard_ita_step`; off keeps tau = 1).

    python -m ferd distill --profile cpu --preset dfard
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ferd.errors import ConfigError
from ferd.method.baselines.base import RSLAD_ADV, RSLAD_NAT, Baseline
from ferd.method.losses import kl_divergence
from ferd.method.synthesis import SynthesisResult, generation_round

TAU_RANGE = (1.0, 10.0)  # ITA clip (baselines.md 4)
ITA_BATCHES = 10  # dL/dtau is averaged over the epoch's last 10 student batches
AGB_MOMENTUM = 0.9


def agb_weights(m: Tensor | None, terms: Tensor, momentum: float = AGB_MOMENTUM) -> tuple[Tensor, Tensor]:
    """One AGB update: m <- momentum m + (1 - momentum) |L| (m starts at the first |L|), w = mean(m) / (m + 1e-8).

    Shapes: m [K] or None, terms [K] (the loss terms of one generator step) -> (w [K], new m [K]), both detached.
    Every term then contributes about mean(m) in magnitude while the overall scale is kept (baselines.md 4).
    """
    mag = terms.detach().abs()
    m = mag if m is None else momentum * m + (1.0 - momentum) * mag
    return m.mean() / (m + 1e-8), m


def ita_update(tau: float, grad: float, step: float, direction: str = "ascent") -> float:
    """tau <- clip(tau +- step * sign(grad), 1, 10): ascent follows the curriculum-temperature reading."""
    if direction not in ("ascent", "descent"):
        raise ConfigError("dfard_ita_direction", direction, ("ascent", "descent"))
    sign = (grad > 0) - (grad < 0)
    if direction == "descent":
        sign = -sign
    return float(min(max(tau + step * sign, TAU_RANGE[0]), TAU_RANGE[1]))


class DFARD(Baseline):
    """DFARD (approx.): AGB-weighted generator, RSLAD-style student at an ITA-adjusted temperature."""

    label = "DFARD (approx.)"
    reads = ("schedule", "generator", "ferd_generator", "dfard")
    relative_cost = 1.1

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.tau = 1.0  # tau_0 (baselines.md 4)
        self.agb_m: Tensor | None = None  # moving averages of |L_bn|, |L_oh|, |L_adv|, persistent
        self._tau_grads: list[Tensor] = []
        # no config field yet; `dfard_ita_direction` is read when the lead adds it (baselines.md 4 switch)
        self.ita_direction = getattr(self.d, "dfard_ita_direction", "ascent")

    def synthesize(self, epoch: int) -> SynthesisResult:
        """Reset G, uniform labels, N_G steps on the AGB-weighted terms; the kept batch is the step with the lowest
        weighted total (the weights move a little between steps; the skeleton's rule is kept) [our reading]."""
        d = self.d
        self.reset_generator(epoch)
        y = self.uniform_labels()
        z = torch.randn(len(y), d.nz, device=self.device, requires_grad=True)
        w_bn, w_adv, w_oh = d.gen_loss_weights[:3]
        fixed = torch.tensor([w_bn, w_oh, w_adv], device=self.device)
        last_w = [fixed]

        def objective(x_hat: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
            with self.bn.recording():
                t = self.teacher(x_hat)
            terms = torch.stack([self.bn.loss().to(t.device), F.cross_entropy(t, y),
                                 -kl_divergence(t, self.student(x_hat))])  # [3]: bn, oh, adv
            if d.dfard_agb:
                w, self.agb_m = agb_weights(self.agb_m, terms)
                last_w[0] = w
            else:
                w = fixed
            total = (w * terms).sum()
            return total, {"gen_bn": terms[0], "gen_oh": terms[1], "gen_adv": terms[2], "gen_total": total}

        res = generation_round(self.G, z, y, objective, steps=d.n_g, lr_g=d.lr_g, lr_z=d.lr_z,
                               padding=d.aug_padding, flip=d.aug_flip, frozen_nets=(self.teacher, self.student))
        res.parts.update({f"agb_w_{k}": float(v) for k, v in zip(("bn", "oh", "adv"), last_w[0])})
        self.pool.append(res.x.cpu(), res.y.cpu())
        return res

    def student_step(self, epoch: int, step: int) -> dict[str, Tensor]:
        """RSLAD-style KL at temperature tau; records dL/dtau on the epoch's last 10 batches (ITA)."""
        x, _ = self.augmented_batch()
        with torch.no_grad():
            t = self.teacher(x)
        x_adv = self.make_attack(epoch, step)(x, t)
        self.student.train()
        record = self.d.dfard_ita and step >= self.steps_per_epoch() - ITA_BATCHES
        tau = torch.tensor(self.tau, device=self.device, requires_grad=record)
        adv = kl_divergence(t / tau, self.student(x_adv) / tau)
        nat = kl_divergence(t / tau, self.student(x) / tau)
        loss = tau ** 2 * (RSLAD_ADV * adv + RSLAD_NAT * nat)
        if record:  # only the tau path is differentiated: no parameter gradient, no update
            (g,) = torch.autograd.grad(loss, tau, retain_graph=True)
            self._tau_grads.append(g.detach())
        self._backward(loss, epoch, step)
        return {"student_loss": loss.detach(), "student_adv": adv.detach(), "student_nat": nat.detach()}

    def end_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        """ITA: one signed step of tau from the averaged gradient; log the tau this epoch used."""
        row["dfard_tau"] = self.tau
        if self._tau_grads:
            g = float(torch.stack(self._tau_grads).mean())
            row["dfard_tau_grad"] = g
            self.tau = ita_update(self.tau, g, self.d.dfard_ita_step, self.ita_direction)
        self._tau_grads = []

    def extra_state(self) -> dict[str, Any]:
        return {"tau": self.tau, "agb_m": None if self.agb_m is None else self.agb_m.detach().cpu()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.tau = float(state["tau"])
        self.agb_m = None if state["agb_m"] is None else state["agb_m"].to(self.device)
