# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. The main table: full distillation
#
# The earlier chapters took FERD apart. This one runs it end to end, beside the baselines the paper compares
# against, and asks the paper's central question: **does a student distilled with FERD, from a robust teacher
# and without any training data, have a more robust weakest class than the students of other data-free methods,
# and what does it cost on average?**
#
# Every method distils the same robust teacher into the same student with the same schedule and is evaluated with
# the same attacks; only the way synthetic data is made and used differs (baselines specification, section 1):
#
# * **plain DFRD**: FERD's own loop with its three ingredients switched off (no class reweighting, no
#   fairness-aware examples, no uniform-target examples); the reference point for everything FERD adds;
# * **DFHL**: a generator trained against the student only, hard teacher labels and high-entropy examples;
# * **DFARD (approx.)** and **DERD (approx.)**: our own approximations of two published methods whose code and
#   exact equations we do not have; their numbers say how *our* reading of them behaves, not how the published
#   methods do;
# * **RSLAD** and **Fair-RSLAD**: robust distillation on the *real* training images. They are not data-free; they
#   show what the same student reaches when data is available.

# %% [markdown]
# ```{admonition} Open this chapter as a notebook
# :class: tip
# This page is `notebooks/06_main_table.py` executed. To run it yourself, open it in Jupyter as a notebook
# (`jupytext --to ipynb notebooks/06_main_table.py`), or re-run it with other parameters (the cell tagged `parameters`
# lists them): `ferd book --only 06`, or
# `jupytext --to ipynb notebooks/06_main_table.py -o - | papermill - out.ipynb -p profile smoke` ({doc}`../reproduce`).
# ```

# %% [markdown]
# The parameters: the students (one table each) and the methods (rows). `ferd` and `dfrd_plain` must be among
# the methods, since the text compares FERD with them.

# %% tags=["parameters"]
profile = "cpu"  # "smoke" (seconds, meaningless numbers), "cpu" (Fashion-MNIST, the book) or "paper" (GPU)
seed = 0  # seed of every run and attack
device = "cpu"  # "cpu", "cuda", "cuda:N" or "auto"
students = ["fmnist-resnet", "fmnist-mobilenet"]  # student architectures, one table each (paper: RN-18, MN-V2)
methods = ["dfrd_plain", "dfhl", "dfard", "derd", "rslad", "fair_rslad", "ferd"]  # presets, in table order
aa_methods = ["dfrd_plain", "ferd"]  # methods also attacked by AutoAttack (minutes per model on a CPU)
seeds = [0, 1, 2, 3, 4]  # seeds of FERD and plain DFRD on the first student, paired by seed (the verdict)
seeds_other = [0, 1, 2]  # seeds of the same pair on the other students
aa_headline_per_class = 100  # AutoAttack images per class for `aa_methods` at `seed` (resolution 1 point)
aa_seed_per_class = 100  # AutoAttack images per class at the other seeds (resolution 1 point; 50 halves the cost)

# %% [markdown]
# The next cell builds one validated configuration per student and method and looks up the training loop of
# each method; an unknown student or method, or a baseline the library does not provide, fails here.

# %% tags=["hide-input"]
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm's notebook bars are not used here

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display
from myst_nb import glue

import ferd.book.health
import ferd.book.plots
import ferd.book.runner
import ferd.book.tables
from ferd.book import experiments
from ferd.book.plots import PRESET_LABELS, preset_label
from ferd.book.tables import ATTACK_LABELS, DATASET_LABELS, fmt_paper, load_paper_numbers, record_kind
from ferd.config import make_config
from ferd.errors import ConfigError
from ferd.method.methods import method_class, run_key

ferd.book.plots.set_style()
FIG_DIR = ferd.book.runner.output_dir("figures", profile)
for needed in ("ferd", "dfrd_plain"):
    if needed not in methods:
        raise ConfigError("methods", methods, f"a list of presets that contains {needed!r}")
if not students:
    raise ConfigError("students", students, "a non-empty list of student architectures")
if profile == "smoke":  # smoke runs only check the code paths: one student and two seeds exercise them all
    students, seeds, seeds_other = list(students)[:1], list(seeds)[:2], list(seeds_other)[:2]
if seed not in seeds:
    raise ConfigError("seed", seed, f"one of the paired seeds {seeds}")
profile_attacks = make_config(profile, "ferd").attack.attacks
no_aa = [x for x in profile_attacks if x != "aa"]  # AutoAttack only for `aa_methods` (the teacher always)

def aa_images(s: int) -> int:
    """AutoAttack images per class at seed `s` (the smoke profile keeps its own tiny subset)."""
    if profile == "smoke":
        return make_config(profile, "ferd").attack.aa_per_class
    return aa_headline_per_class if s == seed else aa_seed_per_class


cfgs = {(st, m): make_config(profile, m, overrides=dict(
            student=st, seed=seed, device=device,
            **({"attack.aa_per_class": aa_images(seed)} if m in aa_methods else {"attack.attacks": no_aa})))
        for st in students for m in methods}
data_free = {m: "generator" in method_class(cfgs[students[0], m]).needs for m in methods}
base = make_config(profile, "ferd", overrides=dict(student=students[0], seed=seed, device=device))
ATTACKS = list(base.attack.attacks)
ROBUST = [a for a in ("pgd", "aa") if a in ATTACKS]  # the attacks the text compares on
if not ROBUST:
    raise ConfigError("attack.attacks", ATTACKS, "a list that contains 'pgd' or 'aa'")
print(f"{DATASET_LABELS[base.dataset]}, teacher {base.teacher.arch}; students {', '.join(students)}")
print("data-free:", ", ".join(m for m in methods if data_free[m]), "| real data:",
      ", ".join(m for m in methods if not data_free[m]) or "none")

# %% [markdown]
# ## How the students are evaluated
#
# Each student is attacked with the $\ell_\infty$ budget $\epsilon$ it was trained for, by FGSM (one step),
# PGD (iterated sign-gradient steps on the cross-entropy), CW$_\infty$ (the same steps on a margin loss) and
# AutoAttack (an ensemble of four stronger attacks; for its cost, only the teacher and the methods of
# `aa_methods`), and also evaluated without attack (Clean). For each attack we
# measure the accuracy $a_c$ on the test images of every class $c$ and report, as the paper does,
#
# ```{math}
# :label: ch06-metrics
# \text{Avg} = \frac{1}{C}\sum_{c=1}^{C} a_c, \qquad \text{Worst} = \min_c a_c, \qquad
# \text{NSD} = \frac{\sigma(a_1,\dots,a_C)}{\text{Avg}},
# ```
#
# where $\sigma$ is the population standard deviation. Avg and Worst are better when higher; NSD measures how
# unequal the classes are and is better when lower. The images are {glue:text}`ch06_eval_set`, budget
# $\epsilon =$ {glue:text}`ch06_eps`.
#
# The next cell distils every student (or loads it from the artifact store, where each finished run is kept under
# the hash of its configuration) and evaluates it and the teacher under every attack of the profile.

# %%
a = base.attack
aa_other = aa_images(next((s for s in seeds if s != seed), seed))  # AutoAttack images per class at the other seeds
glue("ch06_eval_set", (f"the first {a.eval_per_class} test images of each class" if a.eval_per_class
                       else "the whole test set")
     + ("" if "aa" not in ATTACKS else
        f" (AutoAttack: the first {aa_images(seed)} of each class at every seed)" if aa_images(seed) == aa_other
        else f" (AutoAttack: the first {aa_images(seed)} of each class at seed {seed}, {aa_other} at the other "
        "seeds)"), display=False)
glue("ch06_eps", f"{a.eps:.4g}", display=False)

experiments.prefetch(cfgs.values(), progress=False)  # every missing run trained and evaluated side by side
teacher_pc = experiments.evaluate_teacher(base, progress=False)
per_class = {key: experiments.evaluate_student(c, progress=False) for key, c in cfgs.items()}
summary = pd.concat([experiments.summary(pc, cfgs[key]).assign(student=key[0]) for key, pc in per_class.items()],
                    ignore_index=True)
teacher_summary = experiments.summary(teacher_pc, base)
ferd.book.tables.save_results(pd.concat([teacher_summary.assign(student="(teacher)"), summary], ignore_index=True),
                         "ch06_main_table", profile)
ferd.book.tables.save_results(pd.concat([teacher_pc, *per_class.values()], ignore_index=True), "ch06_per_class",
                         profile)
print(f"{len(per_class)} students and the teacher evaluated under {', '.join(ATTACK_LABELS[x] for x in ATTACKS)}")

# %% [markdown]
# ## Our tables
#
# One table per student: rows are the methods and the teacher (the same robust teacher for every student),
# columns the attacks, with Avg, Worst and NSD (accuracies in percent). The last column is the hash of the
# configuration that produced the row, so every cell can be traced to its run. AutoAttack, run only for the
# teacher and the methods of `aa_methods` and on fewer images, has a table of its own below each student's, with
# the number of images per class that sets its resolution. A method marked † has a run that misses a precondition
# of a healthy run (chapter 2): the caption says which, and its numbers are to be read with that in mind.

# %%
teacher_label = f"Teacher ({base.teacher.arch})"
labels = {**PRESET_LABELS, "teacher": teacher_label}
health_main = ferd.book.health.record_health(cfgs.values(), "06_main_table", profile)
for st in students:
    rows = pd.concat([teacher_summary, summary[summary["student"] == st]], ignore_index=True)
    provenance = ferd.book.tables.provenance_caption(profile, base.dataset, seed, list(rows["config_hash"].unique()),
                                                     paper_dataset=None).removeprefix("Ours: ")
    sick = health_main[(health_main["student"] == st) & (health_main["failed"] != "")]
    st_labels = {**labels, **{p: labels.get(p, p) + " †" for p in sick["preset"]}}
    health_note = (" † misses a precondition: " + "; ".join(f"{labels.get(r.preset, r.preset)}: "
                                                             + r.failed.replace("; ", ", ") for r in sick.itertuples())
                   + "." if len(sick) else " Every run meets the preconditions of chapter 2.")
    standard = rows[rows["attack"] != "aa"]
    table = ferd.book.tables.side_by_side(standard, None, rows="preset", cols="attack", cell="{ours}",
                                          labels=st_labels)
    table[("run", "config")] = list(standard.drop_duplicates("preset")["config_hash"])
    display(table.style.set_caption(f"Ours: student {st}. {provenance}{health_note}"))
    aa = rows[rows["attack"] == "aa"]
    if len(aa):
        aa_table = ferd.book.tables.side_by_side(aa, None, rows="preset", cols=None, cell="{ours}", labels=st_labels)
        aa_table["images per class"] = list(aa.drop_duplicates("preset")["n_per_class"])
        aa_table["resolution (points)"] = [f"{100 / n:.2g}" for n in aa_table["images per class"]]
        aa_table["config"] = list(aa.drop_duplicates("preset")["config_hash"])
        display(aa_table.style.set_caption(f"AutoAttack, student {st} (the methods of aa_methods and the teacher). "
                                           + provenance))

# %% [markdown]
# ## The paper's Table 1, for orientation
#
# The paper's main table is on CIFAR-10 with a WideResNet-34-10 teacher and ResNet-18 (RN-18) and MobileNet-V2
# (MN-V2) students. Only part of it could be recovered; every other cell prints "n/r" (not recovered), and every
# other baseline row is unknown. **These are CIFAR-10 numbers**: a different dataset, different networks and a
# different budget, so they cannot be compared with ours cell by cell. They show what the paper claims: which
# method wins, and by how much, on its weakest class. Our `fmnist-resnet` plays the role of RN-18 and
# `fmnist-mobilenet` that of MN-V2.

# %%
PAPER_STUDENT = {"fmnist-resnet": "rn18", "resnet18": "rn18", "fmnist-mobilenet": "mnv2", "mobilenetv2": "mnv2"}
PAPER_NAME = {"rn18": "RN-18", "mnv2": "MN-V2"}
numbers = load_paper_numbers()
for st in students:
    code = PAPER_STUDENT.get(st)
    t1 = numbers[numbers["key"].str.startswith(f"t1.c10.{code}.") & numbers["metric"].isin(["Avg", "Worst", "NSD"])]
    if code is None or t1.empty:
        print(f"{st}: no counterpart in the paper's Table 1")
        continue
    t1 = t1.assign(cell=[fmt_paper(None if pd.isna(v) else v, record_kind(m)) for v, m in zip(t1["value"],
                                                                                              t1["metric"])])
    table = t1.pivot_table(index="method", columns=["attack", "metric"], values="cell", aggfunc="first",
                           sort=False).fillna(ferd.book.tables.NOT_RECOVERED)
    display(table.style.set_caption(
        f"Paper, Table 1: CIFAR-10, WRN-34-10 teacher -> {PAPER_NAME[code]} student (shown beside our {st}). "
        "CIFAR-10 orientation only, not comparable with our Fashion-MNIST numbers; n/r = not recovered."))

# %% [markdown]
# ## The weakest class under attack
#
# {numref}`fig-ch06-worst-class` shows the worst-class accuracy of every method under each attack, one panel per
# student; the teacher is the first group.

# %%
robust_attacks = [x for x in ATTACKS if x != "clean"]
fig, axes = plt.subplots(1, len(students), figsize=(6.5 * len(students), 4), squeeze=False, sharey=True)
for ax, st in zip(axes[0], students):
    rows = pd.concat([teacher_summary, summary[summary["student"] == st]], ignore_index=True)
    worst = rows[rows["attack"].isin(robust_attacks)].pivot_table(index="preset", columns="attack", values="worst",
                                                                   sort=False)
    worst = worst[robust_attacks]
    worst.index = [labels.get(p, p) for p in worst.index]
    worst.columns = [ATTACK_LABELS[x] for x in worst.columns]
    ferd.book.plots.grouped_bars(ax, worst, "worst-class accuracy (%)")
    ax.set_title(st)
    ax.legend(fontsize=8)
fig.tight_layout()
ferd.book.plots.save_figure(fig, "ch06_worst_class", folder=FIG_DIR)
glue("ch06_worst_class_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} ch06_worst_class_fig
# :name: fig-ch06-worst-class
#
# Worst-class accuracy (%) under each attack (one bar per attack; clean accuracy not shown) of the teacher (first
# group) and of every method (one group each), one panel per student; single-seed runs evaluated on
# {glue:text}`ch06_eval_set` at $\epsilon =$ {glue:text}`ch06_eps`. A missing bar is an attack the method was not
# evaluated under.
# ```

# %%
def worst_of(st, method, attack):
    """Worst-class accuracy, or NaN where the method was not evaluated under this attack (`aa_methods`)."""
    row = summary[(summary["student"] == st) & (summary["preset"] == method) & (summary["attack"] == attack)]
    return float(row["worst"].iloc[0]) if len(row) else float("nan")


def pct(x, st, attack):
    """A worst-class accuracy with the decimals its images per class allow (1,000: 0.1 points; AA's 100: 1 point)."""
    n = summary[(summary["student"] == st) & (summary["attack"] == attack)]["n_per_class"].min()
    return f"{100 * x:.{ferd.book.tables.resolution_digits(n)}f}"


sentences, wins_plain, wins_best, n_cases = [], 0, 0, 0
for st in students:
    for attack in ROBUST:
        f, plain = worst_of(st, "ferd", attack), worst_of(st, "dfrd_plain", attack)
        rivals = [m for m in methods if m != "ferd" and data_free[m] and worst_of(st, m, attack) == worst_of(st, m, attack)]
        best = max(rivals, key=lambda m: worst_of(st, m, attack))
        b = worst_of(st, best, attack)
        d_plain, d_best = 100 * (f - plain), 100 * (f - b)
        n_cases += 1
        wins_plain += d_plain > 0
        wins_best += d_best > 0
        text = (f"{st}, {ATTACK_LABELS[attack]}: FERD's weakest class reaches {pct(f, st, attack)}%, "
                f"{'above' if d_plain > 0 else 'not above'} plain DFRD's {pct(plain, st, attack)}% "
                f"({'+' if d_plain >= 0 else '−'}{pct(abs(d_plain) / 100, st, attack)} points)")
        if best != "dfrd_plain":
            text += (f", and {'above' if d_best > 0 else 'not above'} the best other data-free method, "
                     f"{preset_label(best)}, at {pct(b, st, attack)}% "
                     f"({'+' if d_best >= 0 else '−'}{pct(abs(d_best) / 100, st, attack)} points)")
        else:
            text += ", which is also the best of the data-free baselines"
        real = [m for m in methods if not data_free[m] and worst_of(st, m, attack) == worst_of(st, m, attack)]
        if real:
            top = max(real, key=lambda m: worst_of(st, m, attack))
            name = preset_label(top).replace(" (real data)", "")
            text += f"; with real data, {name} reaches {pct(worst_of(st, top, attack), st, attack)}%"
        sentences.append(text + ".")
overall = (f"At this seed, FERD's weakest class is above plain DFRD's in {wins_plain} of {n_cases} cases and above "
           f"the best other data-free method's in {wins_best} of {n_cases}.")
glue("ch06_findings", " ".join(sentences), display=False)
glue("ch06_overall", overall, display=False)
glue("ch06_robust", " and ".join(ATTACK_LABELS[x] for x in ROBUST), display=False)
print("\n".join(sentences), overall, sep="\n")

# %% [markdown]
# **What the table says.** Comparing worst-class accuracy under {glue:text}`ch06_robust`, at one seed:
# {glue:text}`ch06_findings`
#
# Read at this one seed: {glue:text}`ch06_overall` Single-seed runs say nothing about noise, so this is a
# description, not a verdict: the next section repeats FERD and plain DFRD over seeds and gives the verdict.
#
# (ch06-over-seeds)=
# ## Over seeds: does FERD beat plain DFRD?
#
# FERD and plain DFRD are trained with the same seeds, so seed $s$ gives both the same teacher, the same initial
# student and the same attack starts: the comparison is *paired*. For each metric we take the per-seed difference
# FERD $-$ plain DFRD, its mean over seeds, and the 95 % Student-t interval of that mean (`scipy.stats.ttest_rel`,
# through `ferd.book.verdicts`). The claim "FERD is better" is **supported** when the whole interval lies on the
# better side of zero, **not supported** when it lies on the worse side, and **inconclusive** when it contains
# zero. Beside each Worst we print its resolution: a class's accuracy on $n$ images moves in steps of $100/n$
# points.

# %%
from ferd.book.claims import comparison_claim, save_claims
from ferd.book.verdicts import compare_paired, paired_table

pair = ("ferd", "dfrd_plain")
seed_cfgs = {(st, m, s): make_config(profile, m, overrides={"student": st, "seed": s, "device": device,
                                                            "attack.aa_per_class": aa_images(s)})
             for st in students for m in pair for s in (seeds if st == students[0] else seeds_other)}
experiments.prefetch(seed_cfgs.values(), progress=False)
seed_pc = {k: experiments.evaluate_student(c, progress=False) for k, c in seed_cfgs.items()}
seed_summary = pd.concat([experiments.summary(pc, seed_cfgs[k]).assign(student=k[0], method=k[1])
                          for k, pc in seed_pc.items()], ignore_index=True)
ferd.book.tables.save_results(pd.concat([pc.assign(student=k[0]) for k, pc in seed_pc.items()], ignore_index=True),
                              "ch06_seeds_per_class", profile)
ferd.book.tables.save_results(seed_summary, "ch06_seeds_summary", profile)
values = seed_summary[seed_summary["attack"].isin(ROBUST)].copy()
values[["avg", "worst"]] *= 100  # points
verdicts = paired_table(values, "ferd", "dfrd_plain", ["avg", "worst", "nsd"], by=["student", "attack"])


def resolution(st: str, attack: str) -> str:
    """The step of a per-class accuracy in this comparison: 100 / images per class (several sizes: each named)."""
    n = sorted({int(pc.loc[pc["attack"] == attack, "count"].min()) for k, pc in seed_pc.items()
                if k[0] == st and (pc["attack"] == attack).any()})
    return " / ".join(f"{100 / x:.2g}" for x in n) + " points" if n else ""


verdicts["resolution"] = [resolution(st, at) if m != "nsd" else "" for st, at, m
                          in zip(verdicts["student"], verdicts["attack"], verdicts["metric"])]
ferd.book.tables.save_results(verdicts, "ch06_verdicts", profile)
shown = verdicts.assign(
    attack=verdicts["attack"].map(ATTACK_LABELS), metric=verdicts["metric"].map({"avg": "Avg", "worst": "Worst",
                                                                                 "nsd": "NSD"}),
    interval=[f"[{lo:+.3g}, {hi:+.3g}]" for lo, hi in zip(verdicts["ci_low"], verdicts["ci_high"])])
shown = shown[["student", "attack", "metric", "seeds", "ferd", "dfrd_plain", "difference", "interval", "verdict",
               "resolution"]].rename(columns={"ferd": "FERD", "dfrd_plain": "plain DFRD", "difference": "FERD − plain"})
# the health of the paired runs (chapter 2's preconditions), printed beside the comparison they feed
seed_health = ferd.book.health.record_health([*cfgs.values(), *seed_cfgs.values()], "06_main_table", profile)
seed_health = seed_health[seed_health["run"].isin({run_key(c) for c in seed_cfgs.values()})]
health_parts = []
for (st, m), rows in seed_health.groupby(["student", "preset"], sort=False):
    sick = rows[rows["failed"] != ""]
    health_parts.append(f"{preset_label(m)} on {st}: {len(rows) - len(sick)} of {len(rows)} runs meet every "
                        "precondition" + "".join(f"; seed {r.seed} misses {r.failed.replace('; ', ', ')}"
                                                 for r in sick.itertuples()))
display(shown.style.hide(axis="index").format({"FERD": "{:.3g}", "plain DFRD": "{:.3g}", "FERD − plain": "{:+.3g}"})
        .set_caption("FERD against plain DFRD over paired seeds: means (points; NSD unitless), the mean paired "
                     "difference and its 95 % interval. Health (chapter 2): " + ". ".join(health_parts) + ". "
                     + ferd.book.tables.provenance_caption(
                         profile, base.dataset, sorted(values["seed"].unique()), list(seed_summary["config_hash"].unique()),
                         paper_dataset=None)))

PAPER_GAIN = {("pgd", "worst"): "gain.c10.mnv2.pgd.worst", ("aa", "worst"): "gain.c10.mnv2.aa.worst",
              ("aa", "avg"): "gain.c10.rn18.aa.avg", ("aa", "nsd"): "gain.c10.rn18.aa.nsd",
              ("pgd", "nsd"): "gain.c10.mnv2.any.nsd"}
claims, verdict_words = [], []
for r in verdicts.itertuples():
    what = {"avg": "raises the average", "worst": "raises the weakest class", "nsd": "lowers the NSD"}[r.metric]
    c = compare_paired(values[(values.student == r.student) & (values.attack == r.attack) & (values.method == "ferd")]
                       .sort_values("seed")[r.metric],
                       values[(values.student == r.student) & (values.attack == r.attack)
                              & (values.method == "dfrd_plain")].sort_values("seed")[r.metric],
                       higher_is_better=r.metric != "nsd")
    claims.append(comparison_claim(f"FERD {what} under {ATTACK_LABELS[r.attack]} against plain DFRD ({r.student})",
                                   "06_main_table", c, unit="" if r.metric == "nsd" else " points",
                                   digits=3 if r.metric == "nsd" else 2,
                                   paper_key=PAPER_GAIN.get((r.attack, r.metric), ""), resolution=r.resolution))
    verdict_words.append(f"{what} under {ATTACK_LABELS[r.attack]} on {r.student}: {r.verdict}")
save_claims(claims, "06_main_table", profile)
glue("ch06_seed_verdicts", "; ".join(verdict_words), display=False)
glue("ch06_seed_counts", f"{len(seeds)} seeds on {students[0]}" + (
    f" and {len(seeds_other)} on {', '.join(students[1:])}" if len(students) > 1 else ""), display=False)

# %%
METRIC_NAMES = {"avg": "Avg", "worst": "Worst", "nsd": "NSD"}
forest = verdicts.assign(name=[f"{st} · {ATTACK_LABELS[at]} {METRIC_NAMES[m]}" for st, at, m
                               in zip(verdicts["student"], verdicts["attack"], verdicts["metric"])])
points, nsd = forest[forest["metric"] != "nsd"], forest[forest["metric"] == "nsd"]
fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(points) + 1.6), gridspec_kw={"width_ratios": [3, 2]})
ferd.book.plots.paired_intervals(axes[0], points, "name", "FERD − plain DFRD (points; right of 0: FERD higher)")
ferd.book.plots.paired_intervals(axes[1], nsd, "name", "FERD − plain DFRD (NSD; left of 0: FERD fairer)")
fig.tight_layout()
ferd.book.plots.save_figure(fig, "ch06_paired_intervals", folder=FIG_DIR)
glue("ch06_paired_intervals_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} ch06_paired_intervals_fig
# :name: fig-ch06-paired-intervals
#
# FERD against plain DFRD over paired seeds ({glue:text}`ch06_seed_counts`): for each student, attack and
# metric, the mean per-seed difference FERD $-$ plain DFRD (dot) and its 95 % Student-t interval (bar),
# coloured by the verdict on "FERD is better". An interval that crosses the vertical line at zero is
# inconclusive. The table above gives the same numbers with the resolution of each Worst.
# ```
#
# Over {glue:text}`ch06_seed_counts`, FERD against plain DFRD ({numref}`fig-ch06-paired-intervals`):
# {glue:text}`ch06_seed_verdicts`. The paper's gains
# (in the findings table of the landing page) are against the *best* baseline on CIFAR-10; ours are against plain
# DFRD, the loop FERD is built on, which isolates what FERD's three parts add. The other baselines ran at one seed
# only (their cost), so no verdict is drawn against them.
#
# ## Which checkpoint?
#
# The released code keeps the student with the best *clean* test accuracy, and which checkpoint the paper
# evaluated is unknown. Our tables use the final student; choosing on robust test accuracy would be selection on
# the test set, so we never do it. The next cell evaluates FERD's best-clean checkpoint (tracked on a fixed
# subset of test images during training) beside the final one.

# %%
rows, best_epochs = [], {}
for st in students:
    c = make_config(profile, "ferd", overrides=dict(student=st, seed=seed, device=device, **{"attack.attacks": no_aa}))
    for which in ("final", "best_clean"):
        pc = experiments.evaluate_student(c, which, progress=False)
        rows.append(experiments.summary(pc, c).assign(student=st))
    h = experiments.distill(c, progress=False).history.dropna(subset=["acc_clean"])
    best_epochs[st] = (int(h.loc[h["acc_clean"].idxmax(), "epoch"]), int(h["epoch"].max()))
checkpoints = pd.concat(rows, ignore_index=True)
ferd.book.tables.save_results(checkpoints, "ch06_best_clean", profile)
table = ferd.book.tables.side_by_side(checkpoints, None, rows=["student", "checkpoint"], cols="attack", cell="{ours}",
                                 labels={"final": "final epoch", "best_clean": "best clean"})
display(table.style.set_caption(ferd.book.tables.provenance_caption(
    profile, base.dataset, seed, list(checkpoints["config_hash"].unique()), paper_dataset=None)))

ck = checkpoints.set_index(["student", "checkpoint", "attack"])
parts = []
for st in students:
    epoch, last = best_epochs[st]
    if epoch == last:
        parts.append(f"for {st} the best clean accuracy was reached in the last tracked epoch ({epoch}), so the two "
                     "checkpoints coincide")
        continue
    x = [a for a in ROBUST if a != "aa"][-1]  # the checkpoints are compared without AutoAttack (its cost)
    d_clean = 100 * (ck.loc[(st, "best_clean", "clean"), "avg"] - ck.loc[(st, "final", "clean"), "avg"])
    d_worst = 100 * (ck.loc[(st, "best_clean", x), "worst"] - ck.loc[(st, "final", x), "worst"])
    parts.append(f"for {st} the best-clean checkpoint is from epoch {epoch} of {last}; against the final student its "
                 f"clean average differs by {d_clean:+.2f} points and its {ATTACK_LABELS[x]} worst class by "
                 f"{d_worst:+.1f} points")
glue("ch06_checkpoints", "; ".join(parts), display=False)

# %% [markdown]
# In our runs, {glue:text}`ch06_checkpoints`. (The clean accuracy used to pick the checkpoint is tracked on a
# subset of the test images, so "best clean" is itself a mild use of test data; the final student involves
# none.)
#
# ## Exercises
#
# 1. Read the NSD columns. Is the method with the best worst class also the one with the lowest NSD? Find a pair of
#    rows where NSD and Worst disagree and explain how that can happen from {eq}`ch06-metrics`.
# 2. The paper's gains are stated against the *best* baseline per column. Recompute our comparison that way
#    (a different best baseline per attack and metric) and compare with the sentence above.
# 3. Bring Fair-RSLAD's per-class loss weights (baselines specification, section 7.2) into the data-free setting:
#    add them to plain DFRD with your own `Distiller` subclass. Do loss weights help the weakest class as much as
#    FERD's sampling weights?
# 4. Re-run the chapter with `methods` restricted to the data-free methods and `students` set to one student, and
#    measure how long it takes; then estimate the paper profile's cost with chapter 9.
