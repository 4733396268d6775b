"""Was a run healthy? The preconditions of a faithful miniature (spec 8.0), measured on every run.

A result is only worth reading when the run that made it was healthy: the teacher recognises the synthetic
images as the classes they were drawn for, the FAE mask splits the channels (neither all robust nor all
non-robust), the class weights do not collapse onto one class, and the student learnt most of what the teacher
knows. `run_health` reads these from a finished run's per-epoch history and its full-test-set evaluation;
`health_table` does it for many runs, and `failed_checks` names what a row misses.

    from ferd.book.health import health_table
    health_table([make_config("cpu", p) for p in ("ferd", "dfrd_plain")])
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import pandas as pd

from ferd.book import experiments
from ferd.config import Config, make_config
from ferd.method.methods import method_class
from ferd.toolkit import artifacts

# The bars of spec 8.0 / issue 10.
MIN_AGREEMENT, MIN_CLASS_AGREEMENT = 0.80, 0.50
MAX_WEIGHT = 0.6  # a class weight above this ...
MAX_WEIGHT_SHARE = 0.5  # ... in more than this share of the epochs means the softmax collapsed (spec 8 watch-outs)
NONROBUST_BOUNDS = (0.01, 0.99)  # a mean non-robust fraction outside these is a degenerate FAE mask
MIN_CLEAN_RATIO, MIN_PGD_RATIO, MIN_CLASS_CLEAN = 0.85, 0.75, 0.20


def run_health(cfg: Config, store: artifacts.ArtifactStore | None = None, progress: bool = False) -> dict:
    """One row: the run's synthesis, FAE, reweighting and student health, and the teacher's reference accuracy.

    Agreement is the pool's at the last epoch; the non-robust fraction is the mean over epochs (NaN without FAE);
    `max_p_mean` and `max_p_above` (the fraction of epochs whose largest class weight exceeds 0.6) summarise the
    class weights (NaN for a run that draws classes uniformly); clean and PGD-20 come from the final student's and
    the teacher's evaluation tables.
    """
    res = experiments.distill(cfg, store, progress)
    h = res.history
    last = h.iloc[-1]
    student = experiments.summary(experiments.evaluate_student(cfg, store=store, progress=progress), cfg)
    teacher = experiments.summary(experiments.evaluate_teacher(cfg, store, progress), cfg)

    def acc(summary: pd.DataFrame, attack: str, metric: str) -> float:
        rows = summary[summary["attack"] == attack]
        return float(rows[metric].iloc[0]) if len(rows) else math.nan

    row = {"preset": cfg.preset, "setting": setting(cfg), "student": cfg.student, "seed": cfg.seed, "run": res.key,
           "agree_pool": float(last.get("agree_pool", math.nan)),
           "agree_pool_worst": float(last.get("agree_pool_worst", math.nan)),
           "nonrobust_mean": float(h["nonrobust"].mean()) if "nonrobust" in h else math.nan,
           "max_p_mean": float(h["max_p"].mean()), "max_p_above": float((h["max_p"] > MAX_WEIGHT).mean()),
           "clean": acc(student, "clean", "avg"), "clean_worst": acc(student, "clean", "worst"),
           "pgd": acc(student, "pgd", "avg"), "pgd_worst": acc(student, "pgd", "worst"),
           "teacher_clean": acc(teacher, "clean", "avg"), "teacher_pgd": acc(teacher, "pgd", "avg")}
    method = method_class(cfg)
    if "probe" not in method.needs or not cfg.distill.use_reweighting:  # uniform classes: no weights to collapse
        row["max_p_mean"] = row["max_p_above"] = math.nan
    if not method.labels_by_sampling:  # e.g. DFHL labels its pool with the teacher's own prediction: 100 % by design
        row["agree_pool"] = row["agree_pool_worst"] = math.nan
    row["failed"] = "; ".join(failed_checks(row, uses_generator="generator" in method.needs and method.labels_by_sampling))
    return row


def setting(cfg: Config) -> str:
    """What a run changes from its preset at the same profile, student and seed ('distill.gamma=0.5'; '' for
    none), so that two runs of one preset and seed (chapter 3's temperatures, chapter 5's gamma sweep) can be told
    apart."""
    base = make_config(cfg.profile, cfg.preset, student=cfg.student, seed=cfg.seed, device=cfg.device)
    changed = []
    for section in ("teacher", "distill"):
        ours, default = dataclasses.asdict(getattr(cfg, section)), dataclasses.asdict(getattr(base, section))
        changed += [f"{section}.{k}={v:g}" if isinstance(v, float) else f"{section}.{k}={v}"
                    for k, v in ours.items() if v != default[k]]
    if cfg.attack.eps != base.attack.eps:
        changed.append(f"attack.eps={cfg.attack.eps:g}")
    return ", ".join(changed)


def _below(value: float, bar: float) -> tuple[str, str]:
    """`value` and `bar` as percentages with the fewest decimals (1 to 3) that keep them apart: a miss of 0.03
    points reads 52.97% < 53.00%, not 53.0% < 53.0%."""
    for digits in (1, 2, 3):
        shown = f"{value:.{digits}%}", f"{bar:.{digits}%}"
        if shown[0] != shown[1]:
            return shown
    return shown


def failed_checks(row: dict, uses_generator: bool = True) -> list[str]:
    """The preconditions a health row misses, in words ('' in the table when none)."""
    out = []
    if uses_generator:
        if not row["agree_pool"] >= MIN_AGREEMENT:
            out.append(f"pool agreement {row['agree_pool']:.1%} < {MIN_AGREEMENT:.0%}")
        if not row["agree_pool_worst"] >= MIN_CLASS_AGREEMENT:
            out.append(f"worst-class agreement {row['agree_pool_worst']:.1%} < {MIN_CLASS_AGREEMENT:.0%}")
    nr = row["nonrobust_mean"]
    if not math.isnan(nr) and not NONROBUST_BOUNDS[0] < nr < NONROBUST_BOUNDS[1]:
        out.append(f"FAE mask degenerate ({nr:.0%} non-robust)")
    if row["max_p_above"] > MAX_WEIGHT_SHARE:
        out.append(f"class weights collapsed (max p > {MAX_WEIGHT} in {row['max_p_above']:.0%} of epochs)")
    if not row["clean"] >= MIN_CLEAN_RATIO * row["teacher_clean"]:
        student, bar = _below(row["clean"], MIN_CLEAN_RATIO * row["teacher_clean"])
        out.append(f"clean {student} < {bar} ({MIN_CLEAN_RATIO:.0%} of the teacher's {row['teacher_clean']:.1%})")
    if not row["pgd"] >= MIN_PGD_RATIO * row["teacher_pgd"]:
        student, bar = _below(row["pgd"], MIN_PGD_RATIO * row["teacher_pgd"])
        out.append(f"PGD {student} < {bar} ({MIN_PGD_RATIO:.0%} of the teacher's {row['teacher_pgd']:.1%})")
    if not row["clean_worst"] > MIN_CLASS_CLEAN:
        out.append(f"a class at {row['clean_worst']:.1%} clean (bar: above {MIN_CLASS_CLEAN:.0%})")
    return out


def health_table(cfgs: Iterable[Config], store: artifacts.ArtifactStore | None = None,
                 progress: bool = False) -> pd.DataFrame:
    """`run_health` for each config, one row each, in the given order."""
    return pd.DataFrame([run_health(cfg, store, progress) for cfg in cfgs])


HEALTH_FILE = "health"


def record_health(cfgs: Iterable[Config], chapter: str, profile: str,
                  store: artifacts.ArtifactStore | None = None) -> pd.DataFrame:
    """The health of every distinct run a chapter used, saved as `results/health_<chapter>.csv`; the book runner
    merges all chapters' files into `results/health.csv` (one row per run of the book, shown on the landing page).
    Each run is checked with Clean and PGD on its own evaluation set (the tables are cached per attack)."""
    import dataclasses

    from ferd.book.tables import save_results
    from ferd.method.methods import run_key

    distinct: dict[str, Config] = {}
    for cfg in cfgs:
        checked = dataclasses.replace(cfg, attack=dataclasses.replace(cfg.attack, attacks=("clean", "pgd")))
        distinct.setdefault(run_key(checked), checked)
    table = health_table(distinct.values(), store)
    save_results(table, f"{HEALTH_FILE}_{chapter}", profile)
    return table


def merged_health(profile: str) -> pd.DataFrame:
    """Every chapter's health rows, one per run (the first chapter that used a run gives its row)."""
    from ferd.book.paths import output_dir

    folder = output_dir("results", profile)
    frames = [pd.read_csv(p, keep_default_na=False) for p in sorted(folder.glob(f"{HEALTH_FILE}_[0-9][0-9]_*.csv"))]
    if not frames:
        return pd.DataFrame()
    merged = pd.concat(frames, ignore_index=True).drop_duplicates("run").reset_index(drop=True)
    if "setting" in merged:  # a chapter file written before the column existed leaves NaN
        merged["setting"] = merged["setting"].fillna("")
    return merged


def health_summary_markdown(df: pd.DataFrame) -> str:
    """One paragraph for the landing page: how many runs meet every precondition, and which do not."""
    if df.empty:
        return ""
    failed = df[df["failed"].astype(str).str.len() > 0]
    text = (f"\n**Health of the runs.** {len(df) - len(failed)} of {len(df)} runs of the book meet every precondition "
            "of a faithful miniature (teacher-label agreement on the synthetic pool, a non-degenerate FAE mask, class "
            "weights that do not collapse, a student near the teacher; `results/health.csv`).")
    if len(failed):
        text += (" These do not, and every result that uses them is to be read with that in mind:\n\n"
                 "| method | student | seed | run | precondition missed |\n|---|---|---|---|---|\n"
                 + "".join(f"| {_method(r)} | {r.student} | {r.seed} | `{r.run}` | {r.failed} |\n"
                           for r in failed.itertuples()))
    return text + "\n"


def _method(row) -> str:
    """The preset, with what the run changes from it ('ferd (distill.gamma=0.5)')."""
    changed = str(getattr(row, "setting", "") or "")
    return f"{row.preset} (`{changed}`)" if changed else str(row.preset)
