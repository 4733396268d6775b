"""Cached experiment steps shared by the CLI and the book's notebooks.

Each function returns a finished artifact from the store when one exists (keyed by config hash), and
computes and stores it otherwise, so a second `ferd book` re-renders without re-training:

    teacher(cfg)                   -> the robust teacher (trained on first use)
    distill(cfg)                   -> DistillResult (trained on first use)
    evaluate_teacher(cfg)          -> per-class DataFrame under cfg.attack.attacks
    evaluate_student(cfg, which)   -> per-class DataFrame of the final or best-clean student
    prefetch(cfgs)                 -> trains (and evaluates) the missing ones in parallel worker processes

A notebook calls `prefetch` on all the configs it is about to loop over; the loop then only reads the store.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn as nn

from ferd.config import Config, resolve_device, scoped_attack
from ferd.method.methods import eval_key, method_class, run, run_key, teacher_eval_key
from ferd.method.runs import DistillResult, run_dir
from ferd.method.teachers import natural_teacher_config, train_teacher
from ferd.toolkit import artifacts
from ferd.toolkit.attacks import build_attack
from ferd.toolkit.data import load_split, stratified_subset
from ferd.toolkit.evaluate import evaluate, summarize
from ferd.toolkit.runtime import threads


def teacher(cfg: Config, store: artifacts.ArtifactStore | None = None, progress: bool = True,
            use_shipped: bool = True) -> nn.Module:
    return train_teacher(cfg, store, progress, use_shipped=use_shipped)[0]


def natural_teacher(cfg: Config, store: artifacts.ArtifactStore | None = None, progress: bool = True) -> nn.Module:
    return train_teacher(natural_teacher_config(cfg), store, progress)[0]


def distill(cfg: Config, store: artifacts.ArtifactStore | None = None, progress: bool = True,
            **kw: Any) -> DistillResult:
    return run(cfg, store=store, progress=progress, **kw)


def eval_split(cfg: Config, attack: str = "pgd") -> Any:
    """The evaluation images of an attack: the whole test split, or its first n images per class.

    Clean, FGSM, PGD and CW use `attack.eval_per_class` (0, the default: the whole test set, spec 2.3); AutoAttack,
    which costs seconds per robust image on a CPU, the first `attack.aa_per_class` of each class (50 by default,
    100 for the headline seed of chapter 6). A per-class accuracy on n images moves in steps of 100/n points.
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


def eval_path(cfg: Config, kind: str, key: str, name: str, store: artifacts.ArtifactStore) -> Path:
    """Where the per-class table of one attack on one model is cached (kind "teacher" or "student-<which>")."""
    one = dataclasses.replace(cfg, attack=scoped_attack(cfg.attack, name))  # keyed by what this attack reads
    scope = teacher_eval_key(one) if kind.startswith("teacher") else eval_key(one)  # a teacher's ignores distill
    return store.path("eval", f"{kind}-{key}-{scope}", f"{name}.csv")


def evaluate_model(cfg: Config, model: nn.Module, kind: str, key: str,
                   store: artifacts.ArtifactStore | None = None, progress: bool = True) -> pd.DataFrame:
    """Per-class table of `model` under every attack of the profile; cached per attack (AA is the cost)."""
    store = store or artifacts.ArtifactStore()
    if cfg.distill.channels_last:  # the training's NHWC speed switch, also for the attacks (same numbers up to rounding)
        model.to(memory_format=torch.channels_last)
    frames = []
    for name in cfg.attack.attacks:
        path = eval_path(cfg, kind, key, name, store)

        def compute(name: str = name) -> pd.DataFrame:
            with threads(cfg.distill.threads):  # the count is keyed with the run: tables are bit-reproducible
                return evaluate(model, eval_split(cfg, name), build_attacks(cfg, model, (name,)),
                                batch_size=cfg.attack.eval_batch_size, device=resolve_device(cfg.device),
                                progress=progress)

        frames.append(artifacts.get_or_compute(path, compute, artifacts.save_frame, artifacts.load_frame))
    return pd.concat(frames, ignore_index=True)


def evaluate_teacher(cfg: Config, store: artifacts.ArtifactStore | None = None, progress: bool = True,
                     use_shipped: bool = True) -> pd.DataFrame:
    """Per-class table of the teacher: the shipped one, or (`use_shipped=False`) the one trained into the store,
    whose tables are cached apart (both share the teacher key)."""
    model = teacher(cfg, store, progress, use_shipped)
    kind = "teacher" if use_shipped else "teacher-retrained"
    return _label(evaluate_model(cfg, model, kind, cfg.key("teacher"), store, progress), cfg, "teacher")


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
    df.insert(4, "config_hash", cfg.key("teacher") if which == "teacher" else run_key(cfg))
    return df


def summary(per_class: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Avg / Worst / Worst-10% / NSD per (preset, model, checkpoint, seed, attack), with the evaluation's size:
    `n_per_class` (the fewest images of a class: a Worst moves in steps of 100 / n_per_class points) and `n_total`
    (Avg moves in steps of 100 / n_total); `ferd.book.tables` prints each number to that precision."""
    keys = [k for k in ("preset", "model", "checkpoint", "seed", "config_hash") if k in per_class]
    out = []
    for vals, g in per_class.groupby(keys, sort=False):
        s = summarize(g, nsd_std=cfg.attack.nsd_std)
        sizes = g.groupby("attack", sort=False)["count"].agg(["min", "sum"])
        s["n_per_class"] = s["attack"].map(sizes["min"]).astype(int)
        s["n_total"] = s["attack"].map(sizes["sum"]).astype(int)
        for k, v in zip(keys, vals if isinstance(vals, tuple) else (vals,)):
            s.insert(0, k, v) if k not in s else None
        out.append(s)
    return pd.concat(out, ignore_index=True)


# ------------------------------------------------------------------------------------------------
# Parallel prefetch: why and how
# ------------------------------------------------------------------------------------------------
# The book's networks are small: on a CPU, two single-threaded processes train two runs in about the time one
# two-threaded process trains one. A chapter therefore hands every run it needs to `prefetch` first, which trains
# (and evaluates) the missing ones in worker processes, and its loop afterwards only reads the store. The store's
# file locks make this safe next to anything else using the same runs. On a GPU (one device) it does nothing.


def pending(cfg: Config, evaluate: bool = True, store: artifacts.ArtifactStore | None = None,
            which: str = "final") -> bool:
    """True when the store lacks the run of `cfg` (or, with `evaluate`, one of the tables of its `which` student)."""
    store = store or artifacts.ArtifactStore()
    key = run_key(cfg)
    if not (run_dir(cfg, store, key) / "final.pt").exists():
        return True
    return evaluate and any(not eval_path(cfg, f"student-{which}", key, name, store).exists()
                            for name in cfg.attack.attacks)


def default_jobs(cfg: Config) -> int:
    """Worker processes for `prefetch`: $FERD_JOBS, else 1 on a GPU, else the threads torch may use here."""
    if os.environ.get("FERD_JOBS"):
        return max(1, int(os.environ["FERD_JOBS"]))
    return 1 if resolve_device(cfg.device).startswith("cuda") else torch.get_num_threads()


def estimated_cost(cfg: Config, evaluate: bool = True) -> float:
    """Relative wall time of a run (and its evaluation), only to start the longest first: the method's
    `relative_cost` times the measured time of one student training step on a batch of random images."""
    return method_class(cfg).relative_cost * _step_seconds(cfg.student, cfg.dataset, cfg.distill.batch_size) * (
        1.5 if evaluate and "aa" in cfg.attack.attacks else 1.0)


_STEP_SECONDS: dict[tuple[str, str, int], float] = {}


def _step_seconds(student: str, dataset: str, batch: int) -> float:
    """Seconds of one forward+backward of `student` on random images (1.0 if it cannot run: a hint only; the
    run itself then fails in its worker with the real error)."""
    key = (student, dataset, batch)
    if key not in _STEP_SECONDS:
        from ferd.toolkit.data import DATASETS
        from ferd.toolkit.models import create_model

        try:
            model = create_model(student, num_classes=DATASETS[dataset].num_classes)
            x = torch.rand(min(batch, 64), *DATASETS[dataset].shape)
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                model(x).sum().backward()
                times.append(time.perf_counter() - t0)
            _STEP_SECONDS[key] = min(times)
        except Exception:  # noqa: BLE001
            _STEP_SECONDS[key] = 1.0
    return _STEP_SECONDS[key]


def _worker_init(threads: int) -> None:
    """Each prefetch worker: `threads` torch threads, and on Linux it dies with its parent (a killed notebook
    kernel must not leave orphans training on the cores; their runs resume from their last checkpoint)."""
    torch.set_num_threads(threads)
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _prefetch_worker(cfgs: list[Config], evaluate: bool, root: str) -> float:
    """One task of `prefetch` in a worker process: the run of `cfgs[0]` and the tables of every cfg."""
    start = time.perf_counter()
    store = artifacts.ArtifactStore(root)
    for cfg in cfgs:
        if evaluate:
            evaluate_student(cfg, store=store, progress=False)
        else:
            distill(cfg, store, progress=False)
    return time.perf_counter() - start


def prefetch(cfgs: Iterable[Config], evaluate: bool = True, jobs: int | None = None,
             store: artifacts.ArtifactStore | None = None, progress: bool = True) -> dict[str, float]:
    """Train (and, with `evaluate`, evaluate under `cfg.attack.attacks`) every config the store lacks, in
    `jobs` worker processes of one thread each, longest first; return {run key: seconds} of what ran.

    Teachers come first, in this process with all its threads. Configs sharing a run form one task (trained
    once, then each evaluated). With fewer than two pending tasks or `jobs` <= 1 nothing is done here: the
    caller's own loop computes them as before. A failed task raises `TrainingError` naming its run after the
    others finish; what finished stays in the store.
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    from tqdm import tqdm

    from ferd.errors import TrainingError

    store = store or artifacts.ArtifactStore()
    tasks: dict[str, list[Config]] = {}
    for cfg in cfgs:
        if pending(cfg, evaluate, store):
            tasks.setdefault(run_key(cfg), []).append(cfg)
    if not tasks:
        return {}
    jobs = min(default_jobs(next(iter(tasks.values()))[0]) if jobs is None else jobs, len(tasks))
    if jobs <= 1:
        return {}
    for group in tasks.values():  # every worker needs them: train each once, here, with all threads
        for tcfg in method_class(group[0]).teacher_configs(group[0]):
            train_teacher(tcfg, store, progress)
    threads = max(1, torch.get_num_threads() // jobs)
    order = sorted(tasks, key=lambda k: -sum(estimated_cost(c, evaluate) for c in tasks[k]))
    seconds: dict[str, float] = {}
    failures: list[str] = []
    bar = tqdm(total=len(order), desc=f"prefetch ({jobs} workers)", disable=not progress)
    # a worker imports ferd (which sets OMP_WAIT_POLICY before torch) to unpickle _worker_init, which sets threads
    with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                                initargs=(threads,)) as pool:
        futures = {pool.submit(_prefetch_worker, tasks[k], evaluate, str(store.root)): k for k in order}
        for fut in cf.as_completed(futures):
            key, cfg = futures[fut], tasks[futures[fut]][0]
            try:
                seconds[key] = fut.result()
                bar.write(f"  {cfg.preset}/{cfg.student} seed {cfg.seed} ({key}): {seconds[key]:.0f} s")
            except Exception as err:  # noqa: BLE001 - reported together below, after the others finish
                failures.append(f"{cfg.preset}/{cfg.student} ({key}): {type(err).__name__}: {err}")
            bar.update()
    bar.close()
    if failures:
        raise TrainingError(f"{len(failures)} of {len(order)} prefetched runs failed:\n" + "\n".join(failures))
    return seconds
