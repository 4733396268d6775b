"""Do runs trained again under a committed run key reproduce the committed results? (issue 11)

A run's key names its configuration, the thread count and a version of the code it depends on, so a run trained
again from an empty store, on another machine, under the same key must give the same student. This script reads
the committed health rows (every one names its run key and holds the run's synthesis, FAE, class-weight and
student numbers at full precision), finds the runs the artifact store holds now under the same key, computes
their health rows again from the store, and compares every number. It trains nothing: a run the store lacks is
listed as not re-trained yet.

The committed side is `benchmarks/results/first_store_health.csv`: the health rows of the first store (an Intel
Xeon, lost on 2026-12-07) frozen as they were committed at 8445a43 (`results/health.csv` and the two campaign
files, with the file each row came from). The live `results/health.csv` cannot serve: chapters re-executed from the
second store write their rows into it, and a run compared with itself is "identical".

    FERD_ARTIFACTS=~/ferd-artifacts python benchmarks/reproduce_runs.py --out benchmarks/results/reproduce_cpu
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pandas as pd  # noqa: E402

from ferd.book.experiments import pending  # noqa: E402
from ferd.book.health import run_health  # noqa: E402
from ferd.book.verdicts import compare_paired  # noqa: E402
from ferd.cli import _parse_sets  # noqa: E402  (the CLI's --set spelling, which a health row's `setting` uses)
from ferd.config import make_config  # noqa: E402
from ferd.method.methods import run_key  # noqa: E402
from ferd.toolkit import artifacts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ("benchmarks/results/first_store_health.csv",)  # the first store's rows, frozen (see the docstring)
NUMBERS = ("agree_pool", "agree_pool_worst", "nonrobust_mean", "max_p_mean", "max_p_above", "clean", "clean_worst",
           "pgd", "pgd_worst", "teacher_clean", "teacher_pgd")
COMPARED = ("clean", "clean_worst", "pgd", "pgd_worst")  # shown in the report, with the seed spread


def committed_rows(files: tuple[str, ...]) -> pd.DataFrame:
    """Every committed health row, one per run key (the first file that holds it), with the file it came from."""
    frames = []
    for f in files:
        if (ROOT / f).exists():
            df = pd.read_csv(ROOT / f)
            frames.append(df if "source" in df else df.assign(source=f))  # a frozen file names each row's own file
    rows = pd.concat(frames, ignore_index=True)
    rows["setting"] = rows.get("setting", pd.Series(index=rows.index, dtype=object)).fillna("")
    return rows.drop_duplicates("run").reset_index(drop=True)


def config_of(row: pd.Series, profile: str):
    """The configuration a health row describes: its preset, student and seed, and its `setting` overrides."""
    sets = [s for s in str(row.setting).split(", ") if s]
    return make_config(profile, row.preset, {**_parse_sets(sets), "student": row.student, "seed": int(row.seed),
                                             "attack.attacks": ("clean", "pgd")})


def seed_spread(rows: pd.DataFrame) -> pd.DataFrame:
    """The committed seed standard deviation (ddof 1) of every number, per (preset, setting, student) with at least
    two seeds: the yardstick a difference between two trainings of one run is read against."""
    groups = rows.groupby(["preset", "setting", "student"])[list(NUMBERS)]
    return groups.std(ddof=1)[groups.size() >= 2]


def compare(rows: pd.DataFrame, profile: str, store: artifacts.ArtifactStore) -> pd.DataFrame:
    spread = seed_spread(rows)
    out = []
    for _, row in rows.iterrows():
        cfg = config_of(row, profile)
        rec = {"preset": row.preset, "setting": row.setting, "student": row.student, "seed": int(row.seed),
               "run": row.run, "committed_in": row.source}
        if run_key(cfg) != row.run:
            rec["status"] = f"keyed {run_key(cfg)} by this code (the row came from older code)"
        elif pending(cfg, evaluate=False, store=store):
            rec["status"] = "not re-trained yet"
        else:
            again = run_health(cfg, store)
            # a number defined in one row only (a max p of a run without class weights, NaN since 2026-12-08) is a
            # change of definition, not of the run: compared are the numbers both rows define
            diffs = {k: abs(float(again[k]) - float(row[k])) for k in NUMBERS
                     if not (math.isnan(float(again[k])) or math.isnan(float(row[k])))}
            worst = max(diffs, key=diffs.get)
            rec.update({"status": "identical" if diffs[worst] == 0 else "differs", "largest_difference": diffs[worst],
                        "differs_in": "" if diffs[worst] == 0 else worst,
                        "agree_pool_committed": float(row.agree_pool), "agree_pool_again": float(again["agree_pool"])})
            rec["teacher_identical"] = diffs.get("teacher_clean", 0) == 0 and diffs.get("teacher_pgd", 0) == 0
            group = (row.preset, row.setting, row.student)
            for k in COMPARED:
                rec[f"{k}_committed"], rec[f"{k}_again"] = float(row[k]), float(again[k])
                rec[f"{k}_seed_sd"] = float(spread.loc[group, k]) if group in spread.index else math.nan
        out.append(rec)
    return pd.DataFrame(out)


def paired_by_store(table: pd.DataFrame, a: str = "ferd", b: str = "dfrd_plain") -> pd.DataFrame:
    """The book's paired comparison of `a` against `b` (same seeds), computed once from the committed rows and once
    from the re-trained runs, per student, over the seeds both stores hold for both methods: does the verdict
    depend on the machine that trained the runs?"""
    done = table[table.status.isin(["identical", "differs"]) & (table.setting == "")]
    out = []
    for student, runs in done.groupby("student"):
        ra, rb = runs[runs.preset == a].set_index("seed"), runs[runs.preset == b].set_index("seed")
        seeds = sorted(set(ra.index) & set(rb.index))
        if len(seeds) < 2:
            continue
        for k in COMPARED:
            rec = {"student": student, "metric": k, "seeds": " ".join(map(str, seeds))}
            for store in ("committed", "again"):
                c = compare_paired(100 * ra.loc[seeds, f"{k}_{store}"], 100 * rb.loc[seeds, f"{k}_{store}"])
                rec.update({f"{store}_diff": c.diff, f"{store}_low": c.low, f"{store}_high": c.high,
                            f"{store}_verdict": c.verdict})
            out.append(rec)
    return pd.DataFrame(out)


def _cell(r, k: str) -> str:
    """'75.34 → 75.28 (-0.06, 0.2 sd)': committed, again, and the difference in points and in seed sds."""
    a, b, sd = 100 * getattr(r, f"{k}_committed"), 100 * getattr(r, f"{k}_again"), 100 * getattr(r, f"{k}_seed_sd")
    spread = f", {abs(b - a) / sd:.1f} sd" if not math.isnan(sd) and sd > 0 else ""
    return f"{a:.2f} → {b:.2f} ({b - a:+.2f}{spread})"


def this_machine() -> str:
    """The CPU model and torch's CPU capability (the SIMD kernels it picks), which set the float rounding."""
    import platform

    import torch

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return f"{model or 'unknown CPU'}, torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()} kernels"


def markdown(table: pd.DataFrame, paired: pd.DataFrame) -> str:
    done = table[table.status.isin(["identical", "differs"])]
    lines = ["# Runs trained again under their committed keys (issue 11)", "",
             "Made by `python benchmarks/reproduce_runs.py --out benchmarks/results/reproduce_cpu`. Each row is a run "
             "whose health row is committed (file in `committed in`) and which the artifact store holds again, "
             f"re-trained from an empty store by the run queue on this machine ({this_machine()}; the committed runs "
             "were trained on the earlier sessions' machine, an Intel Xeon: `benchmarks/results/machine.txt`). Every "
             f"number of the health row ({', '.join(NUMBERS)}) is compared. {len(done)} runs compared: "
             f"{int((done.status == 'identical').sum())} identical, {int((done.status == 'differs').sum())} differ; "
             f"{int((table.status == 'not re-trained yet').sum())} committed runs are not re-trained yet. "
             + ("The shipped teacher, evaluated but not trained, gives identical clean and PGD-20 accuracies in every "
                "compared row, so the differences come from training, where 45 epochs amplify the float rounding "
                "of another CPU's kernels. " if len(done) and done.teacher_identical.all() else "")
             + "Two runs of independent seeds differ with a standard deviation of √2 seed sds (about 1.4), so "
             "differences of up to about 3 sds are what another seed would give. "
             + "Each cell: committed → again, in percent, with the difference in points and in committed seed standard "
             "deviations of the same method (where it has two seeds or more). Clean and PGD-20 are measured on the "
             "whole test set, 1,000 images per class, so a worst class moves in steps of 0.1 points.", "",
             ("| run | preset | setting | student | seed | committed in | result | Clean avg | Clean worst "
              "| PGD-20 avg | PGD-20 worst |"),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in done.itertuples():
        lines.append(f"| `{r.run}` | {r.preset} | {r.setting} | {r.student} | {r.seed} | `{r.committed_in}` "
                     f"| {r.status} " + "".join(f"| {_cell(r, k)} " for k in COMPARED) + "|")
    if len(paired):
        lines += ["", "## Does the verdict move?", "",
                  ("The book's verdict on FERD against plain DFRD is a paired comparison over seeds "
                   "(`ferd.book.verdicts.compare_paired`: the mean of FERD − plain DFRD per seed, in points, with its "
                   "95 % t interval, scipy's `ttest_rel`). Here it is computed twice over the same seeds: from the "
                   "committed rows (first machine) and from the runs trained again (this machine). The verdict is on "
                   "'FERD is higher' (supported: the whole interval above 0; not supported: below 0)."), "",
                  ("| student | metric | seeds | committed: FERD − plain [95 % CI] | verdict | again: FERD − plain "
                   "[95 % CI] | verdict |"), "| --- | --- | --- | --- | --- | --- | --- |"]
        names = {"clean": "Clean avg", "clean_worst": "Clean worst", "pgd": "PGD-20 avg", "pgd_worst": "PGD-20 worst"}
        for r in paired.itertuples():
            cells = [f"{getattr(r, f'{s}_diff'):+.2f} [{getattr(r, f'{s}_low'):+.2f}, {getattr(r, f'{s}_high'):+.2f}] "
                     f"| {getattr(r, f'{s}_verdict')}" for s in ("committed", "again")]
            lines.append(f"| {r.student} | {names[r.metric]} | {r.seeds} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--files", nargs="*", default=list(COMMITTED), help="committed health CSVs, relative to the repo")
    ap.add_argument("--out", default=None,
                    help="write <out>.csv, <out>_paired.csv and <out>.md (default: print the markdown)")
    args = ap.parse_args()
    table = compare(committed_rows(tuple(args.files)), args.profile, artifacts.ArtifactStore())
    paired = paired_by_store(table)
    text = markdown(table, paired)
    if args.out:
        table.to_csv(args.out + ".csv", index=False)
        paired.to_csv(args.out + "_paired.csv", index=False)
        Path(args.out + ".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
