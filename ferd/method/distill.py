"""The one training loop of data-free robustness distillation (spec 5.9), driven by a `Config`.

    python -m ferd distill --profile cpu --preset ferd --student fmnist-resnet

Each epoch, in the spec's order: `synthesize` (generation round into the pool), `probe` (class
vulnerability -> class weights for the next epoch), then, after the warm-up, `student_step` N_S times.
Baselines subclass `Distiller` and override one of these methods; none copies the loop. A method is a strategy
that declares what it needs (`needs`: generator, pool, probe, teacher pair, real data; the loop builds nothing
else), which distillation fields it reads (`reads`: the groups of `ferd.config.DISTILL_GROUPS`, its runs' key)
and which speed switches it honours (`speed_switches`; any other switched on is refused). `ferd.method.methods`
holds the registry and the keys.

A checkpoint is written atomically after every epoch; `run` resumes from the last finished epoch and
ends with exactly the result of an uninterrupted run (all randomness flows from the global torch RNG,
whose state the checkpoint stores, and from attack objects seeded by (seed, epoch, step)).
Swappable pieces (`class_weight_rule`, `student_attack`) are constructor arguments, so a notebook can pass
its own callables without editing the library.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any, Callable

import pandas as pd
import torch
import torch.nn as nn
from tqdm import tqdm

from ferd.config import Config, resolve_device
from ferd.errors import CheckpointError, ConfigError, TrainingError
from ferd.method import parallel
from ferd.method.checkpointing import Checkpointing
from ferd.method.generator import Generator, reinit_generator
from ferd.method.losses import BNStatsLoss, onehot_prior, student_loss, teacher_prior
from ferd.method.pool import SyntheticPool, agreement_columns
from ferd.method.reweighting import class_weights, probe_vulnerability
from ferd.method.runs import DistillResult, custom_suffix, run_dir
from ferd.method.synthesis import SynthesisResult, ferd_round, sample_labels
from ferd.method.teachers import train_teacher
from ferd.method.utae import UTAE
from ferd.toolkit import artifacts
from ferd.toolkit.attacks import PGD, Attack
from ferd.toolkit.augment import augment
from ferd.toolkit.codeversion import code_version
from ferd.toolkit.data import DATASETS, ImageSplit, load_split, stratified_subset
from ferd.toolkit.evaluate import tracking_row
from ferd.toolkit.models import create_model
from ferd.toolkit.runtime import seed_everything, threads
from ferd.toolkit.speed import FastPaths, student_optimizer_kwargs

ClassWeightRule = Callable[[torch.Tensor], torch.Tensor]
StudentAttack = Callable[[nn.Module, float, float, int, int], Attack]  # (net, eps, alpha, steps, seed) -> attack


def cosine_lr(cfg: Config, epoch: int) -> float:
    """Student learning rate of a 1-based epoch: cosine to 0, stepped per epoch (spec 5.8, D10)."""
    d = cfg.distill
    if d.lr_schedule_span == "all_epochs":
        return 0.5 * d.lr * (1 + math.cos(math.pi * (epoch - 1) / d.epochs))
    span = d.epochs - d.warmup
    return 0.5 * d.lr * (1 + math.cos(math.pi * max(epoch - 1 - d.warmup, 0) / span))


class Distiller(Checkpointing):
    """FERD and its ablations; baselines subclass it (ferd.method.baselines)."""

    needs: frozenset[str] = frozenset({"generator", "pool", "probe"})  # also "teacher_pair", "real_data"
    reads: tuple[str, ...] = ("schedule", "generator", "ferd_generator", "fae", "reweighting", "ferd_student")
    speed_switches: frozenset[str] = frozenset({"amp", "channels_last", "compile", "fused_optim", "pool_on_device",
                                                "distributed"})
    labels_by_sampling = True  # False where the pool's labels are the teacher's prediction (DFHL): no agreement check
    relative_cost = 1.0  # wall time of a run relative to FERD's, for scheduling parallel runs only

    @classmethod
    def code_version(cls) -> str:
        """The version of the code this method's runs depend on: its module and what that imports."""
        return code_version(cls.__module__)

    @classmethod
    def run_key(cls, cfg: Config) -> str:
        """What determines a run of this method: the fields it reads, the teacher, seed, student, and its code."""
        return cfg.key("run", groups=cls.reads, code=cls.code_version())

    @classmethod
    def check_speed(cls, cfg: Config) -> None:
        """Refuse a speed switch this method does not implement, rather than ignore it silently."""
        d = cfg.distill
        on = {"amp": d.amp != "off", "channels_last": d.channels_last, "compile": d.compile,
              "fused_optim": d.fused_optim, "pool_on_device": d.pool_on_device, "distributed": d.distributed}
        for name, is_on in on.items():
            if is_on and name not in cls.speed_switches:
                raise ConfigError(f"distill.{name}", getattr(d, name),
                                  f"its default for method {d.method!r}, which implements only "
                                  f"{sorted(cls.speed_switches) or 'no speed switch'}")

    @classmethod
    def teacher_configs(cls, cfg: Config) -> list[Config]:
        """The teacher configs a run loads (trained first, once, before parallel runs start)."""
        return [cfg]

    def __init__(self, cfg: Config, teacher: nn.Module | None = None, store: artifacts.ArtifactStore | None = None,
                 class_weight_rule: ClassWeightRule | None = None, student_attack: StudentAttack | None = None,
                 progress: bool = True):
        self.check_speed(cfg)
        self.cfg, self.d = cfg, cfg.distill
        self.store = store or artifacts.ArtifactStore()
        self.comm = parallel.from_config(cfg)  # None unless distill.distributed under torchrun
        self.device = self.comm.device if self.comm else torch.device(resolve_device(cfg.device))
        self.progress = progress and self._is_main
        self.key = self.run_key(cfg) + custom_suffix(class_weight_rule, student_attack)
        # keyed by what determines the run, not by the preset name: `ferd` with gamma=0 is `ferd_no_utae`
        self.run_dir = run_dir(cfg, self.store, self.key)
        self.teacher = (teacher if teacher is not None else train_teacher(cfg, self.store, progress)[0])
        self.teacher.to(self.device).eval()
        self.C = cfg.num_classes
        self.class_weight_rule = class_weight_rule
        self.student_attack = student_attack
        seed_everything(cfg.seed)
        self.student = create_model(cfg.student, num_classes=self.C).to(self.device)
        self.opt = torch.optim.SGD(self.student.parameters(), lr=self.d.lr, momentum=self.d.momentum,
                                   weight_decay=self.d.weight_decay,
                                   **student_optimizer_kwargs(self.d.fused_optim, self.device))
        shape = DATASETS[cfg.dataset].shape
        self.nc, self.img_size = shape[0], shape[1]
        uses_generator = "generator" in self.needs
        self.G = self.make_generator().to(self.device) if uses_generator else None
        self.bn = BNStatsLoss(self.teacher) if uses_generator else None
        self.fast = FastPaths(self.d, self.teacher, self.student, self.G, self.device, self.comm)  # ferd.toolkit.speed
        self.pool = (SyntheticPool(self.C, dtype=self.d.pool_dtype,
                                   device=self.device if self.d.pool_on_device else "cpu")
                     if "pool" in self.needs else None)
        self.p = torch.full((self.C,), 1.0 / self.C)
        self.D = torch.zeros(self.C)
        self.rows: list[dict[str, Any]] = []
        self.best_clean, self.best_state = -1.0, None
        self.epoch = 0
        self._tracking: ImageSplit | None = None
        self.agree, self.agree_y = torch.zeros(0), torch.zeros(0, dtype=torch.long)  # per pool sample

    # ------------------------------------------------------------------ stages (override in baselines)
    def make_generator(self) -> nn.Module:
        """The generator of FERD's rounds (spec 4.5); built once, before the speed switches apply."""
        return Generator(nz=self.d.nz, img_size=self.img_size, nc=self.nc, ngf=self.d.ngf)

    def synthesize(self, epoch: int) -> SynthesisResult:
        """Generation stage: labels from p, one FERD round, kept batch into the pool (spec 5.2-5.5)."""
        d = self.d
        y = sample_labels(self.p, d.batch_size)
        weights = tuple(d.gen_loss_weights)
        res = ferd_round(self.fast.teacher_gen, self.fast.student_gen, self.G, self.bn, y, nz=d.nz, steps=d.n_g,
                         lr_g=d.lr_g, lr_z=d.lr_z, weights=weights, use_fae=d.use_fae, ib_steps=d.ib_steps,
                         ib_lr=d.ib_lr, ib_beta=d.ib_beta, ib_noise=d.ib_noise, ikl_T2=d.ikl_T2,
                         padding=d.aug_padding, device=self.device, reset_generator=self.resets_generator(epoch),
                         flip=d.aug_flip, comm=self.comm)
        if self.comm is not None:  # every rank appends the whole batch, in label order (ferd.method.parallel)
            res = self.comm.gather_round(res, y)
        self.pool.append(res.x, res.y)
        return res

    def resets_generator(self, epoch: int) -> bool:
        """Whether this round starts from a re-initialised generator: every round (the release, spec 5.2), or only
        the first when `generator_reset = "never"` (the generator then keeps what it learnt, issue 10)."""
        return self.d.generator_reset == "every_round" or epoch == 1

    def reset_generator(self, epoch: int) -> None:
        """Re-initialise G when `resets_generator(epoch)` says so (the generator baselines' rounds)."""
        if self.resets_generator(epoch):
            reinit_generator(self.G)

    def record_agreement(self, res: SynthesisResult) -> dict[str, float]:
        """Teacher-label agreement of the kept batch and of the whole pool, overall and per class (spec 8.0).

        Agreement is how often the teacher predicts the sampled label; it is recorded when a batch enters the
        pool (the frozen teacher gives the same answer later, except under the release's BN leak, D4).
        """
        with torch.no_grad():
            was = self.teacher.training
            self.teacher.eval()
            pred = self.teacher(res.x.to(self.device)).argmax(1).cpu()
            self.teacher.train(was)
        y = res.y.cpu()
        self.agree = torch.cat([self.agree, (pred == y).float()])
        self.agree_y = torch.cat([self.agree_y, y])
        return {**agreement_columns("agree_kept", (pred == y).float(), y, self.C),
                **agreement_columns("agree_pool", self.agree, self.agree_y, self.C)}

    def probe(self, res: SynthesisResult, epoch: int) -> dict[str, float]:
        """Robustness probe on the teacher and the class weights for the next epoch (spec 5.6)."""
        d, a = self.d, self.cfg.attack
        if not d.use_reweighting or "probe" not in self.needs:
            return {}
        x, y = res.probe_x if d.probe_batch == "last_augmented" else res.x, res.y.to(self.device)
        if self.comm is not None:  # each rank probes its slice (ferd.method.parallel)
            x, y = self.comm.shard(x), self.comm.shard(y)
        attack = PGD(self.teacher, eps=a.eps, alpha=a.alpha, steps=d.probe_steps, seed=self._seed(epoch, -1))
        D, m = probe_vulnerability(self.teacher, x, y, attack, self.C,
                                   teacher_mode=d.probe_teacher_mode, absent_policy=d.absent_class_policy,
                                   previous=self.D.to(self.device))
        margin_mean = float(m.mean())
        if self.comm is not None:  # per-class margin sums and counts over all ranks
            D, margin_mean = self.comm.vulnerability(m, y, self.C, d.absent_class_policy, self.D.to(self.device))
        self.D = D.detach().cpu().float()
        rule = self.class_weight_rule or d.class_weight_rule
        params: dict[str, Any] = {}
        if rule == "softmax":
            params = {"tau": d.class_weight_tau}
        elif rule == "minmax":
            params = {"bounds": tuple(d.class_weight_bounds)}
        self.p = class_weights(self.D, rule, **params).detach().cpu().double()
        return {"probe_margin_mean": margin_mean}

    def make_attack(self, epoch: int, step: int) -> Attack:
        """The student-stage inner maximisation: UTAE (gamma = 0 gives plain KL-PGD, spec 5.7)."""
        a, d = self.cfg.attack, self.d
        net = self.fast.student_attacked if d.utae_target == "student" else self.teacher
        if self.student_attack is not None:
            return self.student_attack(net, a.eps, a.alpha, d.utae_steps, self._seed(epoch, step))
        return UTAE(net, eps=a.eps, alpha=a.alpha, steps=d.utae_steps, gamma=d.gamma, seed=self._seed(epoch, step))

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.pool.next_batch(self.d.batch_size)
        if self.comm is not None:  # every rank draws the same batch of B and trains on its slice
            x, y = self.comm.shard(x), self.comm.shard(y)
        return x.to(self.device), y.to(self.device)

    def student_step(self, epoch: int, step: int) -> dict[str, torch.Tensor]:
        """One student update on a pool batch: x_F, UTAE x_U, IKL loss (spec 5.7-5.8)."""
        d = self.d
        x, y = self.next_batch()
        x_f = augment(x, padding=d.aug_padding, flip=d.aug_flip)
        with torch.no_grad():
            t = self.teacher(x_f)
        x_u = self.make_attack(epoch, step)(x_f, t)
        self.student.train()
        prior = onehot_prior(y, self.C) if d.ikl_mode == "onehot" else teacher_prior(t, d.ikl_T2)
        out = student_loss(*self.fast.student_views(x_f, x_u), t, prior, d.lambda_clean, d.lambda_adv)
        self._backward(out.total, epoch, step)
        return {"student_loss": out.total.detach(), "student_clean": out.clean.detach(),
                "student_adv": out.adv.detach()}

    def steps_per_epoch(self) -> int:
        return self.d.n_s

    def end_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        """Hook for baselines that adapt per epoch (temperatures, class weights)."""

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    # ------------------------------------------------------------------ the loop
    def run(self) -> DistillResult:
        """Train to the last epoch (resuming from the checkpoint), with the configured CPU thread count."""
        with threads(self.d.threads):
            return self._run()

    def _run(self) -> DistillResult:
        d = self.d
        ckpt = self.run_dir / "checkpoint.pt"
        with artifacts.locked(ckpt) if self._is_main else contextlib.nullcontext():
            final = self.run_dir / "final.pt"
            if self._is_main:  # under the lock: partial files of a killed writer
                artifacts.remove_temporaries(self.run_dir)
            if final.exists():
                try:
                    return self._result_from(final)
                except CheckpointError as err:
                    warnings.warn(f"finishing the run again from its checkpoint: {err}", stacklevel=2)
            self._resume(ckpt)
            bar = tqdm(range(self.epoch + 1, d.epochs + 1), desc=f"{self.cfg.preset}/{self.cfg.student}",
                       disable=not self.progress)
            for epoch in bar:
                row = self.train_epoch(epoch)
                bar.set_postfix({k: f"{row[k]:.3f}" for k in ("student_loss", "acc_clean") if k in row})
                self.epoch = epoch
                self._save_checkpoint(ckpt)
            history = pd.DataFrame(self.rows)
            if self._is_main:  # rank 0 alone writes (ferd.method.parallel)
                artifacts.save_frame(self.run_dir / "history.csv", history)
                artifacts.save_json(self.run_dir / "config.json", {**artifacts.provenance(self.cfg.to_dict()),
                                                                   "key": self.key})
                # final.pt last: it marks the run finished, so a kill before it leaves nothing half-done
                artifacts.save_torch(final, {"student": self.student.state_dict(), "best_clean": self.best_state,
                                             "history": self.rows,
                                             "provenance": artifacts.provenance(self.cfg.to_dict())})
        return DistillResult(self.cfg, self.student.eval(), history, self.run_dir, self.key, self.best_state)

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        d = self.d
        lr = cosine_lr(self.cfg, epoch)
        for g in self.opt.param_groups:
            g["lr"] = lr
        row: dict[str, Any] = {"epoch": epoch, "lr": lr}
        res = None
        if "generator" in self.needs:
            res = self.synthesize(epoch)
            row.update(res.parts)
            row.update(self.record_agreement(res))
            self._check_finite(row, epoch, step=-1)
        row.update({f"p_{c}": float(v) for c, v in enumerate(self.p)})  # p used for this epoch's labels
        if res is not None:
            row.update(self.probe(res, epoch))
        row.update({f"D_{c}": float(v) for c, v in enumerate(self.D)})
        if self.pool is not None:
            row["pool_size"] = len(self.pool)
        if epoch > d.warmup:
            sums: dict[str, torch.Tensor] = {}
            n = self.steps_per_epoch()
            if self.pool is not None:
                self.pool.new_pass()  # the release builds a fresh shuffled loader every epoch
            for step in tqdm(range(n), desc=f"epoch {epoch} student", leave=False, disable=not self.progress):
                parts = self.student_step(epoch, step)
                self._check_finite({k: float(v) for k, v in parts.items()}, epoch, step)  # names the step
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0) + v
            row.update({k: float(v) / n for k, v in sums.items()})
        self.end_epoch(epoch, row)
        if (epoch % d.eval_every == 0 or epoch == d.epochs) and self._is_main:
            row.update(self.track(epoch))
        row["max_p"] = float(self.p.max())
        self.rows.append(row)
        return row

    def track(self, epoch: int) -> dict[str, float]:
        """Per-class clean and PGD accuracy on a fixed stratified test subset (logging only, spec 2.4, 9)."""
        if self._tracking is None:
            self._tracking = stratified_subset(load_split(self.cfg.dataset, "test"), self.d.track_per_class)
        out = tracking_row(self.student, self._tracking, self.cfg.attack, self.device)
        if out["acc_clean"] > self.best_clean:
            self.best_clean = out["acc_clean"]
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.student.state_dict().items()}
        return out

    # ------------------------------------------------------------------ helpers
    @property
    def _is_main(self) -> bool:
        """False on ranks > 0 of a distributed run, which write nothing (ferd.method.parallel)."""
        return getattr(self, "comm", None) is None or self.comm.is_main

    def _seed(self, epoch: int, step: int) -> int:
        rank = self.comm.rank if getattr(self, "comm", None) is not None else 0  # attack starts differ by rank
        return (self.cfg.seed * 1_000_003 + epoch * 10_007 + step + 1 + 7_919 * rank) % (2**62)

    def _backward(self, loss: torch.Tensor, epoch: int, step: int) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def _check_finite(self, row: dict[str, Any], epoch: int, step: int) -> None:
        """Stop with a clear error on a NaN/inf loss, after saving the last good state (the last checkpoint)."""
        bad = [f"{k!r} = {v}" for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)
               and ("loss" in k or k.startswith(("gen_", "student_")))]
        if bad:
            last = (f"the last good state is {self.run_dir / 'checkpoint.pt'} (epoch {self.epoch})" if self.epoch
                    else "no epoch had finished, so there is no checkpoint")
            raise TrainingError(f"loss term {', '.join(bad)} at epoch {epoch}, step {step}"
                                f"{' (generation stage)' if step < 0 else ''} (run {self.run_dir}); {last}")
