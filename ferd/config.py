"""Experiment configuration: dataclasses, profiles, presets, validation and a stable hash.

One precedence, in one function (`make_config`):

    defaults (= the `cpu` profile)  <  profile  <  profile's per-dataset values  <  preset  <  explicit overrides

Profiles (`smoke`, `cpu`, `paper`) and presets (`ferd`, `ferd_no_fae`, ..., baselines) hold only their
differences. Every value is validated once, here, and a bad one raises `ConfigError` naming the field, the
value and what is allowed. Spec: method.md sections 5.10, 7.2, 7.3 and 8; baselines.md section 1.

The defaults are the release's switches (spec 7.2) with the `cpu` profile's schedule (B=128, E=30, warm-up 3,
N_G=20, N_S=60, IB steps 10, generator width 16, the whole test set for evaluation); the `cpu` and `smoke` profiles
add the miniature's departures (`ferd.profiles.MINIATURE`), chosen by the measurements of issue 10 (the teacher
must recognise the synthetic pool before anything else can be read). Earlier, smaller schedules (B=64, E=16,
N_S=28) left students at 60 % of the teacher's clean accuracy; `benchmarks/results/` records the cost of a run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, get_type_hints

from ferd.errors import ConfigError
from ferd.profiles import (ABLATION_PRESETS, BASELINE_PRESETS, PAPER_DATASETS, PRESETS,  # noqa: F401 (re-exported)
                           PROFILES)

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
    aa_per_class: int = 10  # AutoAttack (~3.5 s per robust image on 2 CPU cores) on a smaller such subset
    nsd_std: str = "population"
    eval_batch_size: int = 256
    attacks: tuple = ("clean", "fgsm", "pgd", "cw", "aa")


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
    epochs: int = 30
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
    # speed and scale (ferd.speed, ferd.parallel; benchmarks/README.md)
    amp: str = "off"  # "bf16": autocast for the generator step and the student's loss passes (CUDA)
    channels_last: bool = False  # NHWC weights for teacher, student and generator
    compile: bool = False  # torch.compile the student forward (attack and loss)
    fused_optim: bool = False  # fused SGD for the student on CUDA
    pool_on_device: bool = False  # keep the synthetic pool on the training device
    distributed: bool = False  # one process per GPU under torchrun (ferd.parallel)
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

    def key(self, *parts: str) -> str:
        """Short stable hash of the named parts of the config ('teacher', 'run', 'eval').

        `teacher`: what determines the teacher weights. `run`: what determines a distilled student
        (teacher included). `eval`: the run plus the attack protocol; `attack` adds the protocol to the
        other parts named (a teacher's evaluation is `key('teacher', 'attack')`). The device is left out on purpose,
        so artifacts made on a GPU are reused on a CPU.
        """
        d = self.to_dict()
        pick: dict[str, Any] = {"dataset": d["dataset"], "teacher": d["teacher"], "eps": d["attack"]["eps"],
                                "alpha": d["attack"]["alpha"]}
        if "run" in parts or "eval" in parts:
            pick.update(student=d["student"], seed=d["seed"], distill=_keyed_distill(d["distill"]))
        if "eval" in parts or "attack" in parts:
            pick["attack"] = d["attack"]
        blob = json.dumps(pick, sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# Speed switches change how fast a run goes, not its result, and stay out of the key like the device; `amp`
# and `distributed` change the numbers (bf16 rounding, per-rank batch statistics) and enter it when on, so
# keys of runs made before these switches existed stay valid.
SPEED_ONLY = ("channels_last", "compile", "fused_optim", "pool_on_device")
KEYED_WHEN_ON = {"amp": "off", "distributed": False}


def _keyed_distill(distill: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in distill.items()
            if k not in SPEED_ONLY and not (k in KEYED_WHEN_ON and v == KEYED_WHEN_ON[k])}



# Allowed values of string fields, checked in `validate`.
CHOICES: dict[str, tuple] = {
    "profile": PROFILES_ALLOWED, "preset": tuple(PRESETS), "dataset": DATASETS,
    "teacher.method": ("pgd_at", "trades", "fgsm_rs", "natural"),
    "distill.method": METHODS,
    "distill.ib_noise": ("per_channel", "per_element"),
    "distill.generator_reset": ("every_round", "never"),
    "distill.lr_schedule_span": ("all_epochs", "student_epochs"),
    "distill.ikl_mode": ("onehot", "teacher"),
    "distill.class_weight_rule": ("softmax", "minmax", "uniform"),
    "distill.absent_class_policy": ("zero", "carry_forward"),
    "distill.probe_batch": ("last_augmented", "kept_best"),
    "distill.probe_teacher_mode": ("eval", "train_leak"),
    "distill.utae_target": ("student", "teacher"),
    "distill.pool_dtype": ("float32", "float16", "uint8"),
    "distill.amp": ("off", "bf16"),
    "distill.derd_sga": ("pcgrad", "stochastic_sign", "sum"),
    "distill.derd_bn_teachers": ("both", "robust"),
    "distill.dfard_ita_direction": ("ascent", "descent"),
    "distill.real_kl_reduction": ("elementwise_mean", "batchmean"),
    "attack.fgsm_start": ("gaussian", "none"),
    "attack.nsd_std": ("population", "sample"),
}
ATTACK_NAMES = ("clean", "fgsm", "pgd", "cw", "aa")


# ------------------------------------------------------------------------------------------------
def _section_fields() -> dict[str, tuple[type, dict[str, Any]]]:
    """Map every dotted field name to (type, owner) for lookup and type checks."""
    out: dict[str, Any] = {}
    for f in fields(Config):
        if f.name in ("teacher", "distill", "attack"):
            cls = {"teacher": TeacherConfig, "distill": DistillConfig, "attack": AttackConfig}[f.name]
            hints = get_type_hints(cls)
            for sf in fields(cls):
                out[f"{f.name}.{sf.name}"] = hints[sf.name]
        else:
            out[f.name] = get_type_hints(Config)[f.name]
    return out


FIELD_TYPES = _section_fields()


def resolve_key(key: str) -> str:
    """Accept 'gamma', 'distill.gamma' or 'distill__gamma'; return the dotted name or raise.

    A plain name found in several sections ('epochs', 'lr', 'batch_size') means the distillation one,
    the knob users turn most; the teacher's needs its section ('teacher.epochs').
    """
    key = key.replace("__", ".")
    if key in FIELD_TYPES:
        return key
    matches = [k for k in FIELD_TYPES if k.split(".")[-1] == key]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1 and f"distill.{key}" in matches:
        return f"distill.{key}"
    if len(matches) > 1:
        raise ConfigError(key, key, f"a qualified name, one of {matches}")
    raise ConfigError("config key", key, "a field of ferd.config.Config (see `ferd distill --help`)")


def _coerce(name: str, value: Any) -> Any:
    """Check the type of `value` for field `name`; allow int for float and lists for tuples."""
    typ = FIELD_TYPES[name]
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(name, value, "a bool (True or False)")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(name, value, "an int")
    if typ is float:
        if _is_num(value):
            return float(value)
        raise ConfigError(name, value, "a finite number")
    if typ is str:
        if isinstance(value, str):
            return value
        raise ConfigError(name, value, "a string")
    if typ is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(value)
        if isinstance(value, str):  # "a,b" from the command line
            return tuple(v.strip() for v in value.split(",") if v.strip())
        raise ConfigError(name, value, "a list or tuple")
    return value


def _set(cfg: Config, name: str, value: Any) -> None:
    obj: Any = cfg
    parts = name.split(".")
    for p in parts[:-1]:
        obj = getattr(obj, p)
    setattr(obj, parts[-1], _coerce(name, value))


def _get(cfg: Config, name: str) -> Any:
    obj: Any = cfg
    for p in name.split("."):
        obj = getattr(obj, p)
    return obj


def make_config(profile: str = "cpu", preset: str = "ferd", overrides: Mapping[str, Any] | None = None,
                **kw: Any) -> Config:
    """Build and validate a config: defaults < profile < per-dataset < preset < overrides.

    `overrides` (and keyword arguments) may name fields plainly ('gamma'), dotted ('distill.gamma') or
    with double underscores ('distill__gamma', handy for papermill).
    """
    if profile not in PROFILES:
        raise ConfigError("profile", profile, tuple(PROFILES))
    if preset not in PRESETS:
        raise ConfigError("preset", preset, tuple(PRESETS))
    explicit = {resolve_key(k): v for k, v in {**(overrides or {}), **kw}.items()}
    for name, given in (("profile", profile), ("preset", preset)):  # an override would relabel, not re-apply
        if explicit.get(name, given) != given:
            raise ConfigError(name, explicit[name], f"{given!r}: choose the {name} with make_config's {name} argument")
    cfg = Config(profile=profile, preset=preset)
    for k, v in PROFILES[profile].items():
        _set(cfg, k, v)
    if profile == "paper":
        ds = explicit.get("dataset", cfg.dataset)
        if ds not in PAPER_DATASETS:
            raise ConfigError("dataset", ds, tuple(PAPER_DATASETS))
        for k, v in PAPER_DATASETS[ds].items():
            _set(cfg, k, v)
    for k, v in PRESETS[preset].items():
        _set(cfg, k, v)
    for k, v in explicit.items():
        _set(cfg, k, v)
    validate(cfg)
    return cfg


def config_from_dict(d: Mapping[str, Any]) -> Config:
    """Rebuild a config saved with `Config.to_dict` (checkpoints, artifacts), validating it."""
    cfg = Config()
    for k, v in d.items():
        if isinstance(v, Mapping):
            for sk, sv in v.items():
                _set(cfg, resolve_key(f"{k}.{sk}"), sv)
        else:
            _set(cfg, resolve_key(k), v)
    validate(cfg)
    return cfg


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check(cond: bool, name: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ConfigError(name, value, allowed)


def validate(cfg: Config) -> None:
    """Raise ConfigError on the first value that is not allowed."""
    for name, allowed in CHOICES.items():
        _check(_get(cfg, name) in allowed, name, _get(cfg, name), "one of " + ", ".join(map(repr, allowed)))
    from ferd.models import list_models  # local import: models import nothing from config

    known = list_models()
    for name in ("student", "teacher.arch"):
        _check(_get(cfg, name) in known, name, _get(cfg, name), "a registered model: " + ", ".join(known))
    a, d, t = cfg.attack, cfg.distill, cfg.teacher
    _check(0 < a.eps < 1, "attack.eps", a.eps, "a number in (0, 1)")
    _check(0 < a.alpha <= a.eps, "attack.alpha", a.alpha, f"a number in (0, eps={a.eps}]")
    for name in ("attack.pgd_steps", "attack.cw_steps", "attack.aa_per_class", "distill.warmup",
                 "distill.probe_steps", "distill.utae_steps", "distill.ib_steps", "distill.n_g", "distill.n_s",
                 "distill.aug_padding", "distill.track_per_class", "teacher.train_size", "teacher.attack_steps", "distill.real_train_size",
                 "distill.dfhl_n_g", "distill.dfhl_hee_steps", "seed", "attack.eval_per_class",
                 "teacher.track_per_class"):
        _check(_get(cfg, name) >= 0, name, _get(cfg, name), "an integer >= 0")
    for name in ("attack.eval_batch_size", "attack.aa_targets", "distill.batch_size", "distill.epochs",
                 "distill.nz", "distill.ngf", "distill.eval_every", "distill.snapshot_every", "teacher.epochs",
                 "teacher.batch_size", "distill.dfhl_nz"):
        _check(_get(cfg, name) >= 1, name, _get(cfg, name), "an integer >= 1")
    for name in ("distill.lr", "distill.lr_g", "distill.lr_z", "distill.ib_lr", "teacher.lr",
                 "distill.class_weight_tau", "distill.ikl_T2", "distill.dfhl_lr_z"):
        _check(_get(cfg, name) > 0, name, _get(cfg, name), "a number > 0")
    for name in ("distill.gamma", "distill.ib_beta", "distill.lambda_clean", "distill.lambda_adv",
                 "distill.weight_decay", "teacher.weight_decay", "distill.momentum", "teacher.trades_beta",
                 "attack.cw_kappa", "distill.dfhl_div_weight", "distill.fair_beta", "distill.dfhl_hee_step",
                 "distill.dfard_ita_step"):
        _check(_get(cfg, name) >= 0, name, _get(cfg, name), "a number >= 0")
    _check(d.warmup < d.epochs, "distill.warmup", d.warmup, f"fewer than distill.epochs={d.epochs}")
    _check(0 <= d.dfhl_label_smoothing < 1, "distill.dfhl_label_smoothing", d.dfhl_label_smoothing, "[0, 1)")
    lo_hi = d.class_weight_bounds
    _check(len(lo_hi) == 2 and all(map(_is_num, lo_hi)) and 0 < lo_hi[0] < lo_hi[1],
           "distill.class_weight_bounds", lo_hi,
           "(low, high) with 0 < low < high")
    _check(len(d.gen_loss_weights) == 4 and all(_is_num(w) and w >= 0 for w in d.gen_loss_weights),
           "distill.gen_loss_weights", d.gen_loss_weights, "four numbers >= 0 (bn, adv, oh, uni)")
    bad = [x for x in a.attacks if x not in ATTACK_NAMES]
    _check(not bad, "attack.attacks", a.attacks, "a subset of " + ", ".join(ATTACK_NAMES))
    _check(all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in t.milestones),
           "teacher.milestones", t.milestones, "integer epochs >= 1")
    _check(not d.distributed or (d.method == "ferd" and d.probe_teacher_mode == "eval"), "distill.distributed",
           d.distributed, "False unless method='ferd' with probe_teacher_mode='eval' (ferd.parallel)")
    _check_device(cfg.device)


def resolve_device(device: str) -> str:
    """'auto' becomes 'cuda' when a GPU is visible, else 'cpu'; other values pass through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _check_device(device: str) -> None:
    import torch

    if device == "auto":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError("device", device, "'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count()
        _check(n > 0 and (dev.index or 0) < n, "device", device,
               f"an existing device ({n} CUDA device(s) visible); use 'cpu' here")
    elif dev.type != "cpu":
        raise ConfigError("device", device, "'auto', 'cpu', 'cuda' or 'cuda:N'")


def describe_fields() -> str:
    """One line per field with its default, for `--help` texts and the book."""
    cfg = Config()
    lines = [f"{k} = {_get(cfg, k)!r}" for k in FIELD_TYPES]
    return "\n".join(lines)
