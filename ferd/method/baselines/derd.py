"""DERD (approx.): data-free experts-guided robustness distillation with a robust and a natural teacher.

APPROXIMATION (baselines.md 5): DERD (ACM MM 2024, OpenReview CJKVSlCoRA) has no public code; this is our
MTARD-style reading of its three parts, and every result must be labelled "DERD (approx.)".

- Data level: generator reset per epoch, uniform labels, on the two teachers' averaged BN, CE and -KL terms
  (`derd_bn_teachers`: "both" averages the BN terms, "robust" uses the robust teacher's only).
- Sample level: x' = KL-PGD on the student against q(f^R(x)).
- Expert guidance: L_S = w_nat KL(q(f^N(x)) || q(s(x))) + w_adv KL(q(f^R(x)) || q(s(x'))), weights updated per
  epoch by MTARD's rule (Zhao et al., ECCV 2022; Fair-MTARD code), b = 1, eta = 0.025.
- SGA: the two weighted gradients are combined by PCGrad (Yu et al., NeurIPS 2020), a stochastic sign
  merge, or a plain sum (`derd_sga`).

    python -m ferd distill --profile cpu --preset derd
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ferd.config import Config
from ferd.errors import ConfigError
from ferd.method.baselines.base import Baseline
from ferd.method.losses import BNStatsLoss, kl_divergence
from ferd.method.synthesis import SynthesisResult, generation_round
from ferd.method.teachers import natural_teacher_config, train_teacher
from ferd.toolkit import artifacts

SGA_MODES = ("pcgrad", "stochastic_sign", "sum")
MTARD_B = 1.0  # exponent b [unverified default]
MTARD_ETA = 0.025  # weight learning rate


def pcgrad(g1: Tensor, g2: Tensor) -> tuple[Tensor, Tensor]:
    """PCGrad for two tasks: if g1 . g2 < 0, project each onto the normal plane of the other (original) one.

    Shapes: flat gradients g1, g2 [P] -> projected (g1', g2'), each [P]; unchanged when they do not conflict.
    Written with `torch.where`, so no host sync.
    """
    dot = g1 @ g2
    conflict = dot < 0
    g1p = torch.where(conflict, g1 - dot / (g2 @ g2).clamp_min(1e-20) * g2, g1)
    g2p = torch.where(conflict, g2 - dot / (g1 @ g1).clamp_min(1e-20) * g1, g2)
    return g1p, g2p


def stochastic_sign(g1: Tensor, g2: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Per coordinate: the sum where the signs agree; where they disagree, one component, chosen at random with
    probability proportional to its magnitude (baselines.md 5, SGA "stochastic_sign"). Shapes: [P] -> [P]."""
    agree = g1 * g2 >= 0
    u = torch.rand(g1.shape, generator=generator, device=generator.device if generator else g1.device)
    keep_first = u.to(g1.device) * (g1.abs() + g2.abs()) < g1.abs()
    return torch.where(agree, g1 + g2, torch.where(keep_first, g1, g2))


def combine_gradients(g1: Tensor, g2: Tensor, mode: str, generator: torch.Generator | None = None) -> Tensor:
    """SGA: merge two flat task gradients by "pcgrad" (projections, then sum), "stochastic_sign" or "sum"."""
    if mode == "pcgrad":
        a, b = pcgrad(g1, g2)
        return a + b
    if mode == "stochastic_sign":
        return stochastic_sign(g1, g2, generator)
    if mode == "sum":
        return g1 + g2
    raise ConfigError("derd_sga", mode, SGA_MODES)


def mtard_update(w_nat: float, losses: tuple[float, float], initial: tuple[float, float],
                 b: float = MTARD_B, eta: float = MTARD_ETA) -> float:
    """w_nat <- w_nat - eta (w_nat - r_nat / (r_nat + r_adv)), r = (L / L_0)^b; losses = (nat, adv) epoch means."""
    r_nat, r_adv = ((max(l, 0.0) / max(l0, 1e-12)) ** b for l, l0 in zip(losses, initial))
    if r_nat + r_adv <= 0:
        return w_nat
    return w_nat - eta * (w_nat - r_nat / (r_nat + r_adv))


class DERD(Baseline):
    """DERD (approx.): two-teacher generator, MTARD-weighted expert losses, SGA-merged gradients."""

    label = "DERD (approx.)"
    reads = ("schedule", "generator", "ferd_generator", "derd")
    needs = frozenset({"generator", "pool", "teacher_pair"})  # a robust and a natural expert
    relative_cost = 3.0  # two teachers in every generator step, PCGrad's second backward in every student step

    @classmethod
    def teacher_configs(cls, cfg: Config) -> list[Config]:
        return [cfg, natural_teacher_config(cfg)]

    def __init__(self, cfg: Config, teacher: nn.Module | None = None, store: artifacts.ArtifactStore | None = None,
                 natural_teacher: nn.Module | None = None, **kw: Any):
        """As `Distiller`, plus the natural expert: passed in, or trained (or loaded) from `store` with the teacher
        recipe and method "natural" (baselines.md 5, 8.4)."""
        if cfg.distill.derd_sga not in SGA_MODES:
            raise ConfigError("distill.derd_sga", cfg.distill.derd_sga, SGA_MODES)
        store = store or artifacts.ArtifactStore()
        if natural_teacher is None:  # before super(), which seeds the run: a cached or fresh teacher alike
            natural_teacher = train_teacher(natural_teacher_config(cfg), store, kw.get("progress", True))[0]
        super().__init__(cfg, teacher=teacher, store=store, **kw)
        self.natural = natural_teacher.to(self.device).eval()
        self.bn_natural = BNStatsLoss(self.natural) if self.d.derd_bn_teachers == "both" else None
        self.w_nat = 0.5  # w_adv = 1 - w_nat
        self.initial_losses: tuple[float, float] | None = None  # first student epoch's (L_nat, L_adv) means

    def synthesize(self, epoch: int) -> SynthesisResult:
        d = self.d
        self.reset_generator(epoch)
        y = self.uniform_labels()
        z = torch.randn(len(y), d.nz, device=self.device, requires_grad=True)
        w_bn, w_adv, w_oh = d.gen_loss_weights[:3]

        def objective(x_hat: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
            with self.bn.recording():
                t_r = self.teacher(x_hat)
            l_bn = self.bn.loss().to(t_r.device)
            if self.bn_natural is not None:
                with self.bn_natural.recording():
                    t_n = self.natural(x_hat)
                l_bn = 0.5 * (l_bn + self.bn_natural.loss().to(t_r.device))
            else:
                t_n = self.natural(x_hat)
            s = self.student(x_hat)
            l_oh = 0.5 * (F.cross_entropy(t_r, y) + F.cross_entropy(t_n, y))
            l_adv = -0.5 * (kl_divergence(t_r, s) + kl_divergence(t_n, s))
            total = w_bn * l_bn + w_oh * l_oh + w_adv * l_adv
            return total, {"gen_bn": l_bn, "gen_oh": l_oh, "gen_adv": l_adv, "gen_total": total}

        res = generation_round(self.G, z, y, objective, steps=d.n_g, lr_g=d.lr_g, lr_z=d.lr_z,
                               padding=d.aug_padding, flip=d.aug_flip, frozen_nets=(self.teacher, self.natural, self.student))
        self.pool.append(res.x.cpu(), res.y.cpu())
        return res

    def student_step(self, epoch: int, step: int) -> dict[str, Tensor]:
        """KL to the natural teacher on x, KL to the robust teacher on x' (KL-PGD), merged by SGA."""
        x, _ = self.augmented_batch()
        with torch.no_grad():
            t_r, t_n = self.teacher(x), self.natural(x)
        x_adv = self.make_attack(epoch, step)(x, t_r)
        self.student.train()
        l_nat = kl_divergence(t_n, self.student(x))
        l_adv = kl_divergence(t_r, self.student(x_adv))
        w_nat, w_adv = self.w_nat, 1.0 - self.w_nat
        out = {"student_loss": (w_nat * l_nat + w_adv * l_adv).detach(), "student_nat": l_nat.detach(),
               "student_adv": l_adv.detach()}
        if self.d.derd_sga == "sum":
            self._backward(w_nat * l_nat + w_adv * l_adv, epoch, step)
            return out
        params = [p for p in self.student.parameters() if p.requires_grad]
        g_nat = self._flat_grad(w_nat * l_nat, params)  # two backward passes: the graphs are disjoint
        g_adv = self._flat_grad(w_adv * l_adv, params)
        out["sga_conflict"] = (g_nat @ g_adv < 0).float()
        gen = torch.Generator(device=self.device).manual_seed(self._seed(epoch, step))
        merged = combine_gradients(g_nat, g_adv, self.d.derd_sga, gen)
        self.opt.zero_grad(set_to_none=True)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = merged[offset:offset + n].view_as(p).clone()
            offset += n
        self.opt.step()
        return out

    @staticmethod
    def _flat_grad(loss: Tensor, params: list[nn.Parameter]) -> Tensor:
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])

    def end_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        """MTARD weight update from this epoch's mean losses against the first student epoch's."""
        row["derd_w_nat"], row["derd_w_adv"] = self.w_nat, 1.0 - self.w_nat
        if "student_nat" not in row:  # warm-up epoch: no student stage
            return
        losses = (row["student_nat"], row["student_adv"])
        if self.initial_losses is None:
            self.initial_losses = losses
        self.w_nat = mtard_update(self.w_nat, losses, self.initial_losses)

    def extra_state(self) -> dict[str, Any]:
        return {"w_nat": self.w_nat, "initial_losses": self.initial_losses}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.w_nat = float(state["w_nat"])
        self.initial_losses = None if state["initial_losses"] is None else tuple(state["initial_losses"])
