"""RSLAD and Fair-RSLAD on the real training split: data-available upper-bound references (baselines.md 7).

RSLAD (Zi et al., ICCV 2021, `zibojia/RSLAD`): x' = KL-PGD on the student against q(f^T(x)); loss
5/6 KL(q(t) || q(s(x'))) + 1/6 KL(q(t) || q(s(x))) at temperature 1, reduced as the release does (element-wise
mean over batch x classes). Fair-RSLAD (Yue et al., NeurIPS 2023, `NISP-official/Fair-ARD`): every per-sample
term times w_y, with class weights from GAIRAT's kappa counts of the previous epoch, clipped to [5/6, 5/2].

Schedule [decision]: the common schedule (`distill.epochs`, cosine lr, the common optimiser; Fair-RSLAD adds
Nesterov momentum as its release) with no warm-up, since there is no generator to warm up. One epoch is one pass
over a stratified subset of `real_train_size` images (0 = all): N_S batches per epoch, like every other
method (at most one pass), from a fresh seeded permutation each epoch.
The common schedule (distill.epochs, cosine, warm-up 0) sets the number of epochs.

    python -m ferd distill --profile cpu --preset rslad
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from ferd.config import Config
from ferd.errors import ConfigError
from ferd.method.baselines.base import RSLAD_ADV, RSLAD_NAT, Baseline, kl_per_sample
from ferd.toolkit.attacks import KLPGD, Attack
from ferd.toolkit.data import ImageSplit, load_split, stratified_subset
from ferd.toolkit.runtime import make_generator
from ferd.toolkit.speed import student_optimizer_kwargs

WEIGHT_RANGE = (5 / 6, 5 / 2)  # Fair-RSLAD's clip
KAPPA_FLOOR = 1e-3


class KappaKLPGD(KLPGD):
    """KL-PGD that also counts GAIRAT's kappa: per sample, the iterates x^0 .. x^{K-1} still classified correctly.

    As the Fair-ARD release, the prediction is read from the same forward pass that gives the attack's
    gradient, before each step. `count(x, t, y)` returns (x_adv, kappa [B] float); a plain call is KL-PGD.
    """

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self._labels: Tensor | None = None
        self._kappa: Tensor | None = None

    def count(self, x: Tensor, teacher_logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        self._labels, self._kappa = y, torch.zeros(len(y), device=x.device)
        try:
            return self(x, teacher_logits), self._kappa
        finally:
            self._labels = self._kappa = None

    def objective(self, logits: Tensor, teacher_logits: Tensor) -> Tensor:
        if self._labels is not None:
            self._kappa += (logits.detach().argmax(1) == self._labels).float()
        return super().objective(logits, teacher_logits)


def fair_class_weights(kappa_mean: Tensor, beta: float) -> Tensor:
    """w_c = clip(C kappa_c^-beta / sum_j kappa_j^-beta, 5/6, 5/2), kappa floored at 1e-3 (baselines.md 7.2).

    Shapes: per-class mean kappa [C] -> weights [C].
    """
    k = kappa_mean.double().clamp_min(KAPPA_FLOOR)
    r = k.pow(-beta)
    return (len(k) * r / r.sum()).clamp(*WEIGHT_RANGE).float()


class RSLAD(Baseline):
    """RSLAD on real data; `FairRSLAD` adds the class weights."""

    label = "RSLAD (real data)"
    needs = frozenset({"real_data"})  # no generator, no pool, no probe: real training images
    reads = ("schedule", "real_data")
    speed_switches = frozenset({"channels_last", "fused_optim"})
    relative_cost = 1.5  # every epoch a pass over the real training subset
    kl_reduction = "elementwise_mean"  # the release's; "batchmean" is the switch of baselines.md 7.1

    def __init__(self, cfg: Config, *args: Any, **kw: Any):
        super().__init__(cfg, *args, **kw)
        # no generator to warm up: the student trains from epoch 1. The run key stays that of `cfg`.
        self.cfg = dataclasses.replace(self.cfg, distill=dataclasses.replace(self.cfg.distill, warmup=0))
        self.d = self.cfg.distill
        self.kl_reduction = getattr(self.d, "real_kl_reduction", self.kl_reduction)
        if self.kl_reduction not in ("elementwise_mean", "batchmean"):
            raise ConfigError("real_kl_reduction", self.kl_reduction, ("elementwise_mean", "batchmean"))
        train = load_split(self.cfg.dataset, "train")
        n = self.d.real_train_size
        self.train_split: ImageSplit = stratified_subset(train, max(1, n // self.C)) if n else train
        if len(self.train_split) < self.d.batch_size:
            raise ConfigError("distill.real_train_size", n, f"at least batch_size={self.d.batch_size} images")
        self._order = torch.empty(0, dtype=torch.int64)

    def steps_per_epoch(self) -> int:
        """N_S steps, as every method (baselines.md 1, comparability rule), at most one pass over the subset."""
        return min(len(self.train_split) // self.d.batch_size, self.d.n_s)

    def next_batch(self) -> tuple[Tensor, Tensor]:
        idx, self._order = self._order[: self.d.batch_size], self._order[self.d.batch_size:]
        return self.train_split.float_images(idx).to(self.device), self.train_split.labels[idx].to(self.device)

    def _start_epoch(self, epoch: int) -> None:
        """A fresh shuffle per epoch, seeded by (seed, epoch): resume needs no data-order state."""
        self._order = torch.randperm(len(self.train_split), generator=make_generator(self._seed(epoch, -2)))

    def distillation_loss(self, t: Tensor, s_adv: Tensor, s_nat: Tensor, weights: Tensor | None
                          ) -> tuple[Tensor, Tensor, Tensor]:
        """(total, adv term, clean term); `weights` [B] multiply each sample's terms (Fair-RSLAD)."""
        adv, nat = kl_per_sample(t, s_adv), kl_per_sample(t, s_nat)  # [B]
        if weights is not None:
            adv, nat = weights * adv, weights * nat
        scale = 1.0 / t.shape[1] if self.kl_reduction == "elementwise_mean" else 1.0
        adv, nat = scale * adv.mean(), scale * nat.mean()
        return RSLAD_ADV * adv + RSLAD_NAT * nat, adv, nat

    def attack_batch(self, attack: Attack, x: Tensor, t: Tensor, y: Tensor) -> Tensor:
        return attack(x, t)

    def sample_weights(self, y: Tensor) -> Tensor | None:
        return None

    def make_attack(self, epoch: int, step: int) -> Attack:
        a, d = self.cfg.attack, self.d
        if self.student_attack is not None:
            return self.student_attack(self.student, a.eps, a.alpha, d.utae_steps, self._seed(epoch, step))
        return KappaKLPGD(self.student, eps=a.eps, alpha=a.alpha, steps=d.utae_steps, seed=self._seed(epoch, step))

    def student_step(self, epoch: int, step: int) -> dict[str, Tensor]:
        """Crop + flip, KL-PGD on the student, RSLAD's loss (Fair-RSLAD: weighted, kappa counted)."""
        if step == 0:
            self._start_epoch(epoch)
        x, y = self.augmented_batch()
        with torch.no_grad():
            t = self.teacher(x)
        x_adv = self.attack_batch(self.make_attack(epoch, step), x, t, y)
        self.student.train()
        loss, adv, nat = self.distillation_loss(t, self.student(x_adv), self.student(x), self.sample_weights(y))
        self._backward(loss, epoch, step)
        return {"student_loss": loss.detach(), "student_adv": adv.detach(), "student_nat": nat.detach()}


class FairRSLAD(RSLAD):
    """Fair-RSLAD: RSLAD with per-class loss weights from the previous epoch's kappa (baselines.md 7.2)."""

    label = "Fair-RSLAD (real data)"
    reads = ("schedule", "real_data", "fair")

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        d = self.d
        # the release's optimiser is Nesterov SGD; rebuilt here before any step, so resume loads into it
        self.opt = torch.optim.SGD(self.student.parameters(), lr=d.lr, momentum=d.momentum,
                                   weight_decay=d.weight_decay, nesterov=d.momentum > 0,
                                   **student_optimizer_kwargs(d.fused_optim, self.device))
        self.class_weights = torch.ones(self.C)  # w = 1 in the first epoch
        self._kappa_sum = torch.zeros(self.C)
        self._kappa_n = torch.zeros(self.C)

    def sample_weights(self, y: Tensor) -> Tensor:
        return self.class_weights.to(y.device)[y]

    def attack_batch(self, attack: Attack, x: Tensor, t: Tensor, y: Tensor) -> Tensor:
        if not isinstance(attack, KappaKLPGD):
            raise ConfigError("student_attack", type(attack).__name__, "KappaKLPGD (Fair-RSLAD counts kappa)")
        x_adv, kappa = attack.count(x, t, y)
        self._kappa_sum.index_add_(0, y.cpu(), kappa.cpu())
        self._kappa_n.index_add_(0, y.cpu(), torch.ones(len(y)))
        return x_adv

    def end_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        """Recompute the class weights from this epoch's mean kappa per class; they apply from the next epoch."""
        row.update({f"fair_w_{c}": float(w) for c, w in enumerate(self.class_weights)})
        present = self._kappa_n > 0
        if present.any():
            kappa = self._kappa_sum / self._kappa_n.clamp_min(1)
            kappa = torch.where(present, kappa, kappa[present].mean())  # absent class: neutral value [our reading]
            row.update({f"kappa_{c}": float(k) for c, k in enumerate(kappa)})
            self.class_weights = fair_class_weights(kappa, self.d.fair_beta)
        self._kappa_sum.zero_()
        self._kappa_n.zero_()

    def extra_state(self) -> dict[str, Any]:
        return {"class_weights": self.class_weights.clone()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.class_weights = state["class_weights"].float().cpu()
