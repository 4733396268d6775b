"""Building a configuration: profiles, presets, overrides, validation, all in one place.

One precedence, in one function (`make_config`):

    defaults (= the `cpu` profile)  <  profile  <  profile's per-dataset values  <  preset  <  explicit overrides

Profiles (`smoke`, `cpu`, `paper`) and presets (`ferd`, `ferd_no_fae`, ..., baselines) hold only their
differences. Every value is validated once, here, and a bad one raises `ConfigError` naming the field, the
value and what is allowed. Spec: method.md sections 5.10, 7.2, 7.3 and 8; baselines.md section 1.

The defaults are the release's switches (spec 7.2) with the `cpu` profile's schedule (B=128, E=45, warm-up 3,
N_G=20, N_S=80, UTAE 10 steps, IB steps 10, generator width 16, the whole test set for evaluation); the `cpu` and `smoke` profiles
add the miniature's departures (`ferd.config.profiles.MINIATURE`), chosen by the measurements of issue 10 (the teacher
must recognise the synthetic pool before anything else can be read). Earlier, smaller schedules (B=64, E=16,
N_S=28) left students at 60 % of the teacher's clean accuracy; `benchmarks/results/` records the cost of a run.
"""
from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, Mapping, get_type_hints

from ferd.config.profiles import PAPER_DATASETS, PRESETS, PROFILES
from ferd.config.sections import DATASETS, METHODS, PROFILES_ALLOWED, AttackConfig, Config, DistillConfig, TeacherConfig
from ferd.errors import ConfigError
from ferd.toolkit.attacks import EVAL_ATTACKS
from ferd.toolkit.models import list_models

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


def get_field(cfg: Config, name: str) -> Any:
    """The value of a dotted field ('distill.lr') of a config."""
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
        _check(get_field(cfg, name) in allowed, name, get_field(cfg, name), "one of " + ", ".join(map(repr, allowed)))
    known = list_models()
    for name in ("student", "teacher.arch"):
        _check(get_field(cfg, name) in known, name, get_field(cfg, name), "a registered model: " + ", ".join(known))
    a, d, t = cfg.attack, cfg.distill, cfg.teacher
    _check(0 < a.eps < 1, "attack.eps", a.eps, "a number in (0, 1)")
    _check(0 < a.alpha <= a.eps, "attack.alpha", a.alpha, f"a number in (0, eps={a.eps}]")
    for name in ("attack.pgd_steps", "attack.cw_steps", "attack.aa_per_class", "distill.warmup",
                 "distill.probe_steps", "distill.utae_steps", "distill.ib_steps", "distill.n_g", "distill.n_s",
                 "distill.aug_padding", "distill.track_per_class", "teacher.train_size", "teacher.attack_steps", "distill.real_train_size",
                 "distill.dfhl_n_g", "distill.dfhl_hee_steps", "seed", "attack.eval_per_class",
                 "teacher.track_per_class"):
        _check(get_field(cfg, name) >= 0, name, get_field(cfg, name), "an integer >= 0")
    for name in ("attack.eval_batch_size", "attack.aa_targets", "distill.batch_size", "distill.epochs",
                 "distill.nz", "distill.ngf", "distill.eval_every", "distill.snapshot_every", "teacher.epochs",
                 "teacher.batch_size", "distill.dfhl_nz", "distill.threads"):
        _check(get_field(cfg, name) >= 1, name, get_field(cfg, name), "an integer >= 1")
    for name in ("distill.lr", "distill.lr_g", "distill.lr_z", "distill.ib_lr", "teacher.lr",
                 "distill.class_weight_tau", "distill.ikl_T2", "distill.dfhl_lr_z"):
        _check(get_field(cfg, name) > 0, name, get_field(cfg, name), "a number > 0")
    for name in ("distill.gamma", "distill.ib_beta", "distill.lambda_clean", "distill.lambda_adv",
                 "distill.weight_decay", "teacher.weight_decay", "distill.momentum", "teacher.trades_beta",
                 "attack.cw_kappa", "distill.dfhl_div_weight", "distill.fair_beta", "distill.dfhl_hee_step",
                 "distill.dfard_ita_step"):
        _check(get_field(cfg, name) >= 0, name, get_field(cfg, name), "a number >= 0")
    _check(d.warmup < d.epochs, "distill.warmup", d.warmup, f"fewer than distill.epochs={d.epochs}")
    _check(0 <= d.dfhl_label_smoothing < 1, "distill.dfhl_label_smoothing", d.dfhl_label_smoothing, "[0, 1)")
    lo_hi = d.class_weight_bounds
    _check(len(lo_hi) == 2 and all(map(_is_num, lo_hi)) and 0 < lo_hi[0] < lo_hi[1],
           "distill.class_weight_bounds", lo_hi,
           "(low, high) with 0 < low < high")
    _check(len(d.gen_loss_weights) == 4 and all(_is_num(w) and w >= 0 for w in d.gen_loss_weights),
           "distill.gen_loss_weights", d.gen_loss_weights, "four numbers >= 0 (bn, adv, oh, uni)")
    bad = [x for x in a.attacks if x not in EVAL_ATTACKS]
    _check(not bad, "attack.attacks", a.attacks, "a subset of " + ", ".join(EVAL_ATTACKS))
    _check(all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in t.milestones),
           "teacher.milestones", t.milestones, "integer epochs >= 1")
    _check(not d.distributed or (d.method == "ferd" and d.probe_teacher_mode == "eval"), "distill.distributed",
           d.distributed, "False unless method='ferd' with probe_teacher_mode='eval' (ferd.method.parallel)")
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
    lines = [f"{k} = {get_field(cfg, k)!r}" for k in FIELD_TYPES]
    return "\n".join(lines)
