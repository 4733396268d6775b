"""The configuration's data: one dataclass per section, the per-method field groups, and the teacher key.

A `Config` holds the experiment (profile, preset, dataset, student, seed, device) and three sections:
`TeacherConfig` (the robust teacher's recipe), `DistillConfig` (every switch of the method and its baselines,
spec 7.2, plus the schedule) and `AttackConfig` (threat model and evaluation protocol, spec 2 and 8).
`DISTILL_GROUPS` sorts the distillation fields by the part of the method that reads them; a method declares
the groups it reads (`ferd.method.methods`), and only those enter its runs' key.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

DATASETS = ("fashion_mnist", "cifar10", "cifar100", "tiny_imagenet")
PROFILES_ALLOWED = ("smoke", "cpu", "paper")
METHODS = ("ferd", "dfhl", "dfard", "derd", "rslad", "fair_rslad")


@dataclass
class AttackConfig:
    """Threat model and evaluation protocol (spec 2 and 8)."""

    eps: float = 0.1
    alpha: float = 0.025
    pgd_steps: int = 20
    cw_steps: int = 20
    cw_kappa: float = 50.0
    fgsm_start: str = "gaussian"
    aa_targets: int = 9
    eval_per_class: int = 0  # Clean/FGSM/PGD/CW on the first n test images of each class; 0 = whole test set
    aa_per_class: int = 50  # AutoAttack (seconds per robust image on a CPU) on the first n per class; the headline
    #                         seed of the book uses 100 (chapter 6)
    nsd_std: str = "population"
    eval_batch_size: int = 256
    attacks: tuple = ("clean", "fgsm", "pgd", "cw", "aa")


# The protocol fields each attack's table depends on (besides eps, alpha and the batch size, always keyed): the
# cached table of one attack is keyed by these only, so more AutoAttack images do not re-run PGD.
ATTACK_READS: dict[str, tuple[str, ...]] = {
    "clean": ("eval_per_class",), "fgsm": ("fgsm_start", "eval_per_class"),
    "pgd": ("pgd_steps", "eval_per_class"), "cw": ("cw_steps", "cw_kappa", "eval_per_class"),
    "aa": ("aa_targets", "aa_per_class"),
}


def scoped_attack(attack: AttackConfig, name: str) -> AttackConfig:
    """`attack` reduced to what the table of attack `name` depends on (other fields at their defaults)."""
    keep = set(ATTACK_READS[name]) | {"eps", "alpha", "eval_batch_size"}
    base = AttackConfig()
    return dataclasses.replace(attack, attacks=(name,), **{f.name: getattr(base, f.name)
                                                           for f in dataclasses.fields(AttackConfig)
                                                           if f.name not in keep and f.name != "attacks"})


@dataclass
class TeacherConfig:
    """Robust-teacher training recipe (baselines.md section 8)."""

    arch: str = "fmnist-cnn-large"
    method: str = "trades"  # pgd_at | trades | fgsm_rs | natural
    epochs: int = 6
    batch_size: int = 128
    lr: float = 0.05  # 0.1 diverges (NaN in the first 20 steps) with the 3x3-pooled head
    milestones: tuple = (4, 5)  # lr x0.1 at these epochs (1-based, after that epoch)
    weight_decay: float = 5e-4
    train_size: int = 0  # first n training images (stratified); 0 = all
    attack_steps: int = 5
    trades_beta: float = 2.0
    track_per_class: int = 100  # clean and PGD-20 accuracy per class after every epoch, on the first n test images
    #                             of each class (logging only: the training curves of chapter 1); 0 = off


@dataclass
class DistillConfig:
    """Every switch of spec 7.2 plus the schedule; baseline fields are prefixed by their method."""

    method: str = "ferd"
    batch_size: int = 128
    epochs: int = 45  # 30 left plain DFRD at 70 % of the teacher's PGD-20 accuracy, 45 at 77 % (bar 75 %)
    warmup: int = 3
    n_g: int = 20
    n_s: int = 80
    ib_steps: int = 10
    ib_lr: float = 0.1
    ib_beta: float = 0.3
    ib_noise: str = "per_channel"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule_span: str = "all_epochs"
    lr_g: float = 2e-3
    lr_z: float = 0.015
    generator_reset: str = "every_round"  # the release re-initialises G every round; "never" keeps it (issue 10)
    nz: int = 100
    ngf: int = 16  # generator width (spec 4.5: 64); 16 makes the cpu profile's generator 16x cheaper
    gen_loss_weights: tuple = (5.0, 1.0, 1.0, 5.0)  # (bn, adv, oh, uni)
    ikl_mode: str = "onehot"
    ikl_T2: float = 100.0
    lambda_clean: float = 5 / 6
    lambda_adv: float = 1 / 6
    use_reweighting: bool = True
    use_fae: bool = True
    class_weight_rule: str = "softmax"
    class_weight_tau: float = 1.0
    class_weight_bounds: tuple = (0.05, 0.2)
    absent_class_policy: str = "zero"
    probe_batch: str = "last_augmented"
    probe_teacher_mode: str = "eval"
    probe_steps: int = 20
    gamma: float = 0.3
    utae_target: str = "student"
    utae_steps: int = 10
    aug_padding: int = 2
    aug_flip: bool = True  # the release's random horizontal flip; Fashion-MNIST's shoes all point left (M7)
    pool_dtype: str = "float32"
    eval_every: int = 5
    track_per_class: int = 50  # per-class clean/PGD tracking on the first n test images of each class (100 cost
    #                            a sixth of a cpu run: PGD-20 on 1,000 images every 4 epochs)
    snapshot_every: int = 5
    # speed and scale (ferd.toolkit.speed, ferd.method.parallel; benchmarks/README.md)
    amp: str = "off"  # "bf16": autocast for the generator step and the student's loss passes (CUDA)
    channels_last: bool = False  # NHWC weights for teacher, student and generator
    compile: bool = False  # torch.compile the student forward (attack and loss)
    fused_optim: bool = False  # fused SGD for the student on CUDA
    pool_on_device: bool = False  # keep the synthetic pool on the training device
    distributed: bool = False  # one process per GPU under torchrun (ferd.method.parallel)
    threads: int = 1  # CPU threads of a run: results differ in the last bits with the count, so it is keyed and
    #                   fixed (the book trains runs side by side, one thread each)
    # DFHL (baselines.md 3)
    dfhl_n_g: int = 10
    dfhl_label_smoothing: float = 0.2
    dfhl_div_weight: float = 3.0
    dfhl_hee_steps: int = 10
    dfhl_hee_step: float = 0.03
    dfhl_nz: int = 256
    dfhl_lr_z: float = 0.01
    # DFARD approximation (baselines.md 4)
    dfard_agb: bool = True
    dfard_ita: bool = True
    dfard_ita_step: float = 0.25
    dfard_ita_direction: str = "ascent"
    # DERD approximation (baselines.md 5)
    derd_sga: str = "pcgrad"
    derd_bn_teachers: str = "both"
    # RSLAD / Fair-RSLAD on real data (baselines.md 7)
    real_train_size: int = 20000
    fair_beta: float = 2.0
    real_kl_reduction: str = "elementwise_mean"  # RSLAD's original reduction; "batchmean" as FERD's


@dataclass
class Config:
    """One experiment: profile, data, models, seed, and the three sections above."""

    profile: str = "cpu"
    preset: str = "ferd"
    dataset: str = "fashion_mnist"
    student: str = "fmnist-resnet"
    seed: int = 0
    device: str = "cpu"
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)

    # -- derived ---------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return {"fashion_mnist": 10, "cifar10": 10, "cifar100": 100, "tiny_imagenet": 200}[self.dataset]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self, *parts: str, groups: tuple[str, ...] = (), code: str = "") -> str:
        """Short stable hash of the named parts of the config: 'teacher', 'run', 'attack'.

        `teacher`: what determines the teacher weights. `run` adds the student, the seed and the distillation
        fields of the `groups` the method reads (`DISTILL_GROUPS`); `attack` adds the evaluation protocol. `code`
        is the version of the code behind the result (`ferd.toolkit.codeversion`). Runs and their evaluations
        are keyed by `ferd.method.methods.run_key` and `eval_key`, which pass the method's groups and code.
        The device is left out on purpose, so artifacts made on a GPU are reused on a CPU.
        """
        unknown = [p for p in parts if p not in ("teacher", "run", "attack")]
        if unknown or ("run" in parts and not groups):
            raise ValueError(f"key parts {parts} (groups {groups}): parts are 'teacher', 'run', 'attack', and a "
                             "run key needs its method's groups (use ferd.method.methods.run_key)")
        d = self.to_dict()
        pick: dict[str, Any] = {"dataset": d["dataset"], "teacher": d["teacher"], "eps": d["attack"]["eps"],
                                "alpha": d["attack"]["alpha"]}
        if "run" in parts:
            pick.update(student=d["student"], seed=d["seed"], distill=keyed_distill(d["distill"], groups))
        if "attack" in parts:
            pick["attack"] = d["attack"]
        if code:
            pick["code"] = code
        blob = json.dumps(pick, sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# Which part of the method reads each distillation field. A method's runs are keyed by the fields of the
# groups it reads (`ferd.method.methods`), so a DFHL knob does not re-key FERD and gamma does not re-key RSLAD.
# "speed" fields change how fast a run goes, not its result, and are never keyed (like the device); `amp` and
# `distributed` change the numbers (bf16 rounding, per-rank batch statistics) and enter every key when on.
DISTILL_GROUPS: dict[str, tuple[str, ...]] = {
    "schedule": ("method", "batch_size", "epochs", "warmup", "n_s", "lr", "momentum", "weight_decay",
                 "lr_schedule_span", "aug_padding", "aug_flip", "utae_steps", "eval_every", "track_per_class",
                 "threads"),
    "generator": ("n_g", "lr_g", "lr_z", "generator_reset", "nz", "ngf", "pool_dtype"),
    "ferd_generator": ("gen_loss_weights", "ikl_T2"),
    "fae": ("use_fae", "ib_steps", "ib_lr", "ib_beta", "ib_noise"),
    "reweighting": ("use_reweighting", "class_weight_rule", "class_weight_tau", "class_weight_bounds",
                    "absent_class_policy", "probe_batch", "probe_teacher_mode", "probe_steps"),
    "ferd_student": ("ikl_mode", "lambda_clean", "lambda_adv", "gamma", "utae_target"),
    "dfhl": ("dfhl_n_g", "dfhl_label_smoothing", "dfhl_div_weight", "dfhl_hee_steps", "dfhl_hee_step", "dfhl_nz",
             "dfhl_lr_z"),
    "dfard": ("dfard_agb", "dfard_ita", "dfard_ita_step", "dfard_ita_direction"),
    "derd": ("derd_sga", "derd_bn_teachers"),
    "real_data": ("real_train_size", "real_kl_reduction"),
    "fair": ("fair_beta",),
    "speed": ("channels_last", "compile", "fused_optim", "pool_on_device", "snapshot_every"),
    "numerics": ("amp", "distributed"),
}
KEYED_WHEN_ON = {"amp": "off", "distributed": False}
FIELD_GROUP = {name: group for group, names in DISTILL_GROUPS.items() for name in names}


def keyed_distill(distill: dict[str, Any], groups: tuple[str, ...]) -> dict[str, Any]:
    """The distillation fields a method reading `groups` is keyed by (numerics only when switched on)."""
    return {k: v for k, v in distill.items()
            if FIELD_GROUP[k] in groups or (k in KEYED_WHEN_ON and v != KEYED_WHEN_ON[k])}
