"""Cached experiment steps shared by the CLI and the book's notebooks.

Each function returns a finished artifact from the store when one exists (keyed by config hash), and
computes and stores it otherwise, so a second `ferd book` re-renders without re-training:

    teacher(cfg)                   -> the robust teacher (trained on first use)
    distill(cfg)                   -> DistillResult (trained on first use)
    evaluate_teacher(cfg)          -> per-class DataFrame under cfg.attack.attacks
    evaluate_student(cfg, which)   -> per-class DataFrame of the final or best-clean student
"""
from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd
import torch.nn as nn

from ferd import artifacts
from ferd.attacks import build_attack
from ferd.config import Config, resolve_device
from ferd.data import load_split, stratified_subset
from ferd.distill import DistillResult, run
from ferd.evaluate import evaluate, summarize
from ferd.teachers import natural_teacher_config, train_teacher


def teacher(cfg: Config, store: artifacts.ArtifactStore | None = None, progress: bool = True) -> nn.Module:
    return train_teacher(cfg, store, progress)[0]


def natural_teacher(cfg: Config, store: artifacts.ArtifactStore | None = None, progress: bool = True) -> nn.Module:
    return train_teacher(natural_teacher_config(cfg), store, progress)[0]


def distill(cfg: Config, store: artifacts.ArtifactStore | None = None, progress: bool = True,
            **kw: Any) -> DistillResult:
    return run(cfg, store=store, progress=progress, **kw)


def eval_split(cfg: Config, attack: str = "pgd") -> Any:
    """The evaluation images of an attack: the whole test split, or its first n images per class.

    The paper profile attacks the whole test set (spec 2.3). The `cpu` profile uses the fixed stratified
    subset of spec 8 (first 100 per class) for Clean/FGSM/PGD/CW and, because reference AutoAttack costs
    seconds per robust image on a CPU, the first `aa_per_class` (10) per class for AA.
    """
    test = load_split(cfg.dataset, "test")
    n = cfg.attack.aa_per_class if attack == "aa" else cfg.attack.eval_per_class
    return stratified_subset(test, n) if n else test


def build_attacks(cfg: Config, model: nn.Module, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    a = cfg.attack
    params = {
        "clean": {},
        "fgsm": {"eps": a.eps, "start": a.fgsm_start, "seed": cfg.seed},
        "pgd": {"eps": a.eps, "alpha": a.alpha, "steps": a.pgd_steps, "seed": cfg.seed},
        "cw": {"eps": a.eps, "alpha": a.alpha, "steps": a.cw_steps, "kappa": a.cw_kappa, "seed": cfg.seed},
        "aa": {"eps": a.eps, "n_target_classes": a.aa_targets, "seed": cfg.seed},
    }
    return {n: build_attack(n, model, **params[n]) for n in (names or a.attacks)}


def evaluate_model(cfg: Config, model: nn.Module, kind: str, key: str,
                   store: artifacts.ArtifactStore | None = None, progress: bool = True) -> pd.DataFrame:
    """Per-class table of `model` under every attack of the profile; cached per attack (AA is the cost)."""
    store = store or artifacts.ArtifactStore()
    frames = []
    attack_key = dataclasses.replace(cfg.attack, attacks=())
    for name in cfg.attack.attacks:
        sub = dataclasses.replace(cfg, attack=dataclasses.replace(attack_key, attacks=(name,)))
        scope = ("teacher", "attack") if kind == "teacher" else ("eval",)  # a teacher's table ignores distillation
        path = store.path("eval", f"{kind}-{key}-{sub.key(*scope)}", f"{name}.csv")

        def compute(name: str = name) -> pd.DataFrame:
            return evaluate(model, eval_split(cfg, name), build_attacks(cfg, model, (name,)), batch_size=cfg.attack.eval_batch_size,
                            device=resolve_device(cfg.device), progress=progress)

        frames.append(artifacts.get_or_compute(path, compute, artifacts.save_frame, artifacts.load_frame))
    return pd.concat(frames, ignore_index=True)


def evaluate_teacher(cfg: Config, store: artifacts.ArtifactStore | None = None, progress: bool = True
                     ) -> pd.DataFrame:
    model = teacher(cfg, store, progress)
    return _label(evaluate_model(cfg, model, "teacher", cfg.key("teacher"), store, progress), cfg, "teacher")


def evaluate_student(cfg: Config, which: str = "final", store: artifacts.ArtifactStore | None = None,
                     progress: bool = True, **kw: Any) -> pd.DataFrame:
    """Per-class table of the distilled student; `which` is 'final' (default) or 'best_clean' (spec 2.4)."""
    res = distill(cfg, store, progress, **kw)
    model = res.student if which == "final" else res.best_clean_student()
    df = evaluate_model(cfg, model, f"student-{which}", res.key, store, progress)
    return _label(df, cfg, which)


def _label(df: pd.DataFrame, cfg: Config, which: str) -> pd.DataFrame:
    df = df.copy()
    df.insert(0, "preset", cfg.preset if which != "teacher" else "teacher")
    df.insert(1, "model", cfg.teacher.arch if which == "teacher" else cfg.student)
    df.insert(2, "checkpoint", which)
    df.insert(3, "seed", cfg.seed)
    df.insert(4, "config_hash", cfg.key("teacher") if which == "teacher" else cfg.key("run"))
    return df


def summary(per_class: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Avg / Worst / Worst-10% / NSD per (preset, model, checkpoint, seed, attack)."""
    keys = [k for k in ("preset", "model", "checkpoint", "seed", "config_hash") if k in per_class]
    out = []
    for vals, g in per_class.groupby(keys, sort=False):
        s = summarize(g, nsd_std=cfg.attack.nsd_std)
        for k, v in zip(keys, vals if isinstance(vals, tuple) else (vals,)):
            s.insert(0, k, v) if k not in s else None
        out.append(s)
    return pd.concat(out, ignore_index=True)
