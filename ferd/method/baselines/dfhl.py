"""DFHL (DFHL-RS, Yuan et al., AAAI 2024): hard-label robustness stealing with high-entropy examples.

Baselines.md section 3. The generator is persistent and trained against the student ("clone") only; the kept
batch is labelled with the teacher's top-1; the student learns with CE on the teacher's top-1 of high-entropy
examples built from strongly augmented pool images. Reference code: LetheSec/DFHL-RS-Attack (`train.py`,
`query_sample.py`, `dataset.py`, `losses.py`).

    python -m ferd distill --profile cpu --preset dfhl
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ferd.errors import ConfigError
from ferd.method.baselines.base import Baseline
from ferd.method.generator import Generator
from ferd.method.losses import entropy
from ferd.method.synthesis import SynthesisResult, generation_round
from ferd.toolkit.attacks import Attack, sign_ascent


def strong_augment(x: Tensor, crop: tuple[float, float] = (0.95, 1.0), noise: float = 0.001,
                   angles: tuple[float, ...] = (-15.0, 0.0, 15.0), generator: torch.Generator | None = None
                   ) -> Tensor:
    """DFHL's strong augmentation, vectorised with per-sample draws (baselines.md 3, clone step 2).

    In order: a centre crop keeping a fraction U(crop) of each side (height and width drawn separately, as the
    release), resized back bilinearly; Gaussian noise of std `noise`, clamped to [0, 1]; vertical and horizontal
    flips, each with p = 0.5; a rotation by an angle drawn from `angles` (degrees, nearest-neighbour, zero
    fill, as torchvision's `rotate`). The release draws one set of parameters per batch; we draw them per
    sample [decision], which only adds diversity. Square images assumed (the rotation uses normalised grids).
    Shapes: x [B, C, H, W] in [0, 1] -> same shape, values in [0, 1].
    """
    if x.dim() != 4:
        raise ConfigError("x", tuple(x.shape), "a 4-d image batch [B, C, H, W]")
    b, dev = x.shape[0], x.device

    def rand(*shape: int) -> Tensor:
        return torch.rand(shape, generator=generator, device=generator.device if generator else dev).to(dev)

    theta = torch.zeros(b, 2, 3, device=dev, dtype=x.dtype)  # [B, 2, 3]
    lo, hi = crop
    theta[:, 0, 0] = lo + (hi - lo) * rand(b)  # width fraction kept
    theta[:, 1, 1] = lo + (hi - lo) * rand(b)  # height fraction kept
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # [B, H, W, 2]
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    eps = torch.randn(x.shape, generator=generator, device=generator.device if generator else dev).to(dev)
    x = (x + noise * eps).clamp(0.0, 1.0)
    x = torch.where((rand(b) < 0.5)[:, None, None, None], x.flip(-2), x)  # vertical flip
    x = torch.where((rand(b) < 0.5)[:, None, None, None], x.flip(-1), x)  # horizontal flip
    idx = (rand(b) * len(angles)).long().clamp_max(len(angles) - 1)
    rad = torch.tensor(angles, device=dev, dtype=x.dtype)[idx] * (math.pi / 180.0)  # [B]
    cos, sin = rad.cos(), rad.sin()
    rot = torch.stack([torch.stack([cos, -sin, torch.zeros_like(cos)], 1),
                       torch.stack([sin, cos, torch.zeros_like(cos)], 1)], 1)  # [B, 2, 3]
    grid = F.affine_grid(rot, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


class HighEntropy(Attack):
    """High-entropy examples: sign ascent on the model's predictive entropy, with no eps-ball (DFHL-RS HEE).

    Paper: Yuan et al., "Data-Free Hard-Label Robustness Stealing Attack", AAAI 2024,
    https://arxiv.org/abs/2312.05924 (`generate_hee`). Threat model: none (a query-synthesis step): start at
    x + start_noise * N(0, I), then `steps` times x <- clip01(x + alpha * sign(grad_x H(q(f(x))))). This is
    `sign_ascent` with eps = 1, whose projection is then only the clamp to [0, 1].

    Args:
        model: the network whose entropy is maximised (the student).
        alpha: step size > 0 in pixel units (0.03).
        steps: number of steps >= 0 (10).
        start_noise: std of the Gaussian start (0.001).
        seed: seed of the start noise.
    Shapes: x [B, C, H, W] in [0, 1]; `target` (int64 [B], e.g. the pool labels) is accepted for the common
    `attack(x, target)` interface and ignored -> x_hee like x.

    Example:
        >>> x_hee = HighEntropy(student, alpha=0.03, steps=10)(x, y)
    """

    def __init__(self, model: nn.Module, alpha: float = 0.03, steps: int = 10, start_noise: float = 0.001,
                 seed: int = 0):
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < math.inf:
            raise ConfigError("alpha", alpha, "a real number > 0")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ConfigError("steps", steps, "an integer >= 0")
        if isinstance(start_noise, bool) or not isinstance(start_noise, (int, float)) or start_noise < 0:
            raise ConfigError("start_noise", start_noise, "a real number >= 0")
        super().__init__(model, eps=1.0, alpha=float(alpha), steps=steps, start_noise=float(start_noise),
                         seed=seed)

    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        start = x + self.gaussian(x, self.start_noise)
        return sign_ascent(self.model, x, start, lambda z, _: entropy(z, reduction="sum"), self.eps, self.alpha,
                           self.steps)


def dfhl_generator_loss(s: Tensor, y: Tensor, smoothing: float, div_weight: float
                        ) -> tuple[Tensor, Tensor, Tensor]:
    """L_G = mean_b KL(LS(y_b) || q(s_b)) + div_weight * sum_k p_bar_k log10 p_bar_k (baselines.md 3).

    LS puts 1 - smoothing on y and smoothing / (C - 1) elsewhere; p_bar is the batch mean of q(s). The release
    writes the first term as a soft cross-entropy with `KLDivLoss`, i.e. this KL; the gradients are the same.
    Shapes: student logits s [B, C], labels y [B] -> (total, KL term, diversity term), scalars.
    """
    C = s.shape[1]
    target = torch.full_like(s, smoothing / (C - 1)).scatter(1, y[:, None], 1.0 - smoothing)  # [B, C]
    ls_kl = (torch.xlogy(target, target) - target * F.log_softmax(s, dim=1)).sum(1).mean()
    p_bar = F.softmax(s, dim=1).mean(0)  # [C]
    div = torch.xlogy(p_bar, p_bar).sum() / math.log(10.0)
    return ls_kl + div_weight * div, ls_kl, div


class DFHL(Baseline):
    """DFHL-RS in HEE mode on the common schedule (baselines.md 3 and its project mapping)."""

    label = "DFHL"
    labels_by_sampling = False  # the pool is labelled with the teacher's top-1 prediction (hard labels)
    relative_cost = 0.6  # a cheaper generator step (student-only) and single-view student loss

    reads = ("schedule", "generator", "dfhl")

    def make_generator(self) -> nn.Module:
        """A persistent generator with DFHL's latent size: created once (before the speed switches apply), never
        re-initialised (PyTorch's default init, as the release); checkpointed, so resume continues it."""
        return Generator(nz=self.d.dfhl_nz, img_size=self.img_size, nc=self.nc, ngf=self.d.ngf)

    def synthesize(self, epoch: int) -> SynthesisResult:
        """Fresh z and uniform labels; dfhl_n_g steps on the student-only loss; teacher top-1 labels the batch."""
        d = self.d
        y = self.uniform_labels()
        z = torch.randn(len(y), d.dfhl_nz, device=self.device, requires_grad=True)

        def objective(x_hat: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
            total, ls_kl, div = dfhl_generator_loss(self.student(x_hat), y, d.dfhl_label_smoothing,
                                                    d.dfhl_div_weight)
            return total, {"gen_ls_kl": ls_kl, "gen_div": div, "gen_total": total}

        res = generation_round(self.G, z, y, objective, steps=d.dfhl_n_g, lr_g=d.lr_g, lr_z=d.dfhl_lr_z,
                               padding=d.aug_padding, flip=d.aug_flip, frozen_nets=(self.teacher, self.student))
        with torch.no_grad():
            y_teacher = self.teacher(res.x).argmax(1)  # hard label: the only teacher query of this stage
        res.parts["dfhl_label_match"] = float((y_teacher == res.y).float().mean())
        self.pool.append(res.x.cpu(), y_teacher.cpu())
        return SynthesisResult(res.x, y_teacher, res.probe_x, res.parts)

    def make_attack(self, epoch: int, step: int) -> Attack:
        d = self.d
        return HighEntropy(self.student, alpha=d.dfhl_hee_step, steps=d.dfhl_hee_steps,
                           seed=self._seed(epoch, step))

    def student_step(self, epoch: int, step: int) -> dict[str, Tensor]:
        """Standard then strong augmentation, high-entropy examples, CE on the teacher's top-1 labels."""
        x, y = self.augmented_batch()
        x_hee = self.make_attack(epoch, step)(strong_augment(x), y)
        with torch.no_grad():
            y_teacher = self.teacher(x_hee).argmax(1)
        self.student.train()
        logits = self.student(x_hee)
        loss = F.cross_entropy(logits, y_teacher)
        self._backward(loss, epoch, step)
        return {"student_loss": loss.detach(), "student_agreement": (logits.argmax(1) == y_teacher).float().mean()}
