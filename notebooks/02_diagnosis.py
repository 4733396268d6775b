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
# # 2. Diagnosis: where plain data-free distillation is unfair
#
# The robust teacher of chapter 1 is unevenly robust across classes. What happens when we distil it
# *without data*: a generator invents training images from the teacher alone, and the student imitates the
# teacher on those images and on adversarial versions of them? FERD's starting observation is that the student
# ends up with even more uneven robustness than the teacher, and that the gap between the strongest and the
# weakest class *grows* as distillation proceeds. A second observation is that the attacks are not
# symmetric: each class tends to be pushed into a few particular other classes. **Do both observations hold
# for our Fashion-MNIST setting?**
#
# This chapter trains plain data-free robustness distillation (the `dfrd_plain` preset: FERD with its three
# additions switched off), checks that the runs of the book are healthy enough to be read at all, compares the
# student's per-class robustness with the teacher's, follows the per-class accuracy over the epochs, and maps
# where untargeted attacks send each class.

# %% [markdown]
# ```{admonition} Open this chapter as a notebook
# :class: tip
# This page is `notebooks/02_diagnosis.py` executed. To run it yourself, open it in Jupyter as a notebook
# (`jupytext --to ipynb notebooks/02_diagnosis.py`), or re-run it with other parameters (the cell tagged `parameters`
# lists them): `ferd book --only 02`, or
# `jupytext --to ipynb notebooks/02_diagnosis.py -o - | papermill - out.ipynb -p profile smoke` ({doc}`../reproduce`).
# ```

# %% [markdown]
# The parameters of the chapter; `students` lists the student architectures to diagnose (the first one is
# discussed in the text), `health_methods` the methods whose runs are checked for health (by default the rows
# of chapter 6's main table, in its order).

# %% tags=["parameters"]
profile = "cpu"  # "smoke" (tiny, numbers meaningless), "cpu" (the book) or "paper" (GPU, CIFAR)
seed = 0  # seed of distillation and of the attacks
device = "cpu"  # "cpu", "cuda" or "auto"
preset = "dfrd_plain"  # plain data-free robustness distillation (no reweighting, no FAE, gamma 0)
students = ["fmnist-resnet"]  # student architectures; the first is discussed in the text
targeted_per_class = 20  # images per class for the targeted-attack matrix (0 skips it; cost ~ C x images)
expected_worst = "Shirt"  # the class the method specification (section 8) expects to be the weakest
health_methods = ["dfrd_plain", "dfhl", "dfard", "derd", "rslad", "fair_rslad", "ferd"]  # runs checked for health

# %% [markdown]
# The next cell imports the library and builds one configuration per student, and one per (method, student)
# for the health check; a bad parameter fails here.

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from myst_nb import glue

import ferd.book.health
import ferd.book.plots
import ferd.book.runner
import ferd.book.tables
from ferd.book import experiments
from ferd.config import make_config
from ferd.errors import ConfigError
from ferd.method.methods import run_key
from ferd.toolkit import metrics
from ferd.toolkit.attacks import PGD
from ferd.toolkit.evaluate import attack_confusion, targeted_success_matrix

ferd.book.plots.set_style()
FIG_DIR = ferd.book.runner.output_dir("figures", profile)
# AutoAttack belongs to chapter 6 (minutes per model on a CPU): this chapter's tables use the other attacks
no_aa = [x for x in make_config(profile, "ferd").attack.attacks if x != "aa"]
cfgs = {s: make_config(profile, preset, overrides=dict(student=s, seed=seed, device=device, **{"attack.attacks": no_aa}))
        for s in students}
main = students[0]
cfg = cfgs[main]
if not health_methods:
    raise ConfigError("health_methods", health_methods, "a non-empty list of presets (chapter 6's methods)")
# The health check needs only clean and PGD accuracy (cached per attack, shared with chapter 6's tables).
health_over = dict(seed=seed, device=device, **{"attack.attacks": ["clean", "pgd"]})
health_cfgs = {(m, s): make_config(profile, m, overrides=dict(student=s, **health_over))
               for s in students for m in health_methods}
curve_cfgs = {m: make_config(profile, m, overrides=dict(student=main, **health_over)) for m in ("ferd", "dfrd_plain")}
d = cfg.distill
print(f"profile {cfg.profile}: {d.epochs} epochs ({d.warmup} warm-up), batch {d.batch_size}, "
      f"N_G {d.n_g}, N_S {d.n_s}; run keys " + ", ".join(f"{s}: {run_key(c)}" for s, c in cfgs.items()))

# %% [markdown]
# ## Plain data-free robustness distillation
#
# Each epoch has two stages. In the *generation* stage, labels $y$ are drawn uniformly over the $C$ classes, a
# freshly initialised generator $G$ maps latent codes $z$ to images $x = G(z)$, and $G$ and $z$ are optimised
# so that the teacher $f^T$ finds the images natural and class-typical while teacher and student disagree on
# them:
#
# $$
# \begin{aligned}
# \mathcal{L}_G = {} & \lambda_{bn}\sum_{\ell}\Big(\|\mu_\ell(x)-\mu_\ell^{run}\|_2+\|\sigma^2_\ell(x)-\sigma^{2,run}_\ell\|_2\Big) \\
#   & \;-\; \lambda_{adv}\,\mathrm{IKL}\big(f^S(x), f^T(x)\big) \;+\; \lambda_{oh}\,\mathrm{CE}\big(f^T(x), y\big).
# \end{aligned}
# $$ (ch02-generator)
#
# The first term matches the batch statistics that the teacher's BatchNorm layers stored during its training
# (DeepInversion), the second rewards teacher-student disagreement, the third asks the teacher to recognise
# class $y$. The best batch of the stage joins a growing *pool* of synthetic images. In the *distillation*
# stage the student $f^S$ draws batches $x_F$ from the pool, builds adversarial examples $x_A$ against itself by
# maximising its KL divergence from the teacher (KL-PGD), and learns to match the teacher's clean prediction
# $t = f^T(x_F)$ on both, with weights $\lambda_1 = 5/6$ and $\lambda_2 = 1/6$ ($q$ is the softmax):
#
# $$
# \mathcal{L}_S = \lambda_1\,\mathrm{KL}\big(q(t)\,\|\,q(f^S(x_F))\big)
#   + \lambda_2\,\mathrm{KL}\big(q(t)\,\|\,q(f^S(x_A))\big).
# $$ (ch02-student)
#
# Nothing in {eq}`ch02-generator` or {eq}`ch02-student` looks at how robust each class is: every class gets
# the same number of synthetic images. `ferd.book.experiments.distill` trains the student (or loads the finished run
# from the artifact store) and returns its history, one row per epoch. The next cell also trains the runs of the
# health check below (one per method and student), and shows the history at the epochs where the student's clean
# and PGD accuracy are tracked (on the first `track_per_class` test images of each class).

# %%
# every run of the chapter (the diagnosed students and the health check's methods) trained side by side, one
# core each; the cells below only read the artifact store
experiments.prefetch([*cfgs.values(), *health_cfgs.values(), *curve_cfgs.values()], progress=False)
runs = {s: experiments.distill(c, progress=False) for s, c in cfgs.items()}
res = runs[main]
hist = res.history
classes = experiments.eval_split(cfg).classes
C = len(classes)
tracked = hist[hist["acc_pgd"].notna()]
d_track = ferd.book.tables.resolution_digits(d.track_per_class * C)
pd.DataFrame({"epoch": tracked["epoch"], "learning rate": tracked["lr"].round(4),
              "generator loss": tracked["gen_total"].round(2), "student loss": tracked["student_loss"].round(3),
              "tracked clean (%)": (100 * tracked["acc_clean"]).round(d_track),
              "tracked PGD (%)": (100 * tracked["acc_pgd"]).round(d_track)}).reset_index(drop=True)

# %% [markdown]
# ## Is the miniature healthy?
#
# A per-class table can only be read when the run that made it worked the way the method assumes. A run can
# finish without an error, print tables, and still be meaningless: the first `cpu` profile of this book did
# exactly that, and the departures M1–M7 listed in {doc}`../differences` were needed to repair it. Before any
# diagnosis we therefore check four preconditions on the runs of the main comparison (chapter 6's methods, at this
# chapter's seed and students), read from each run's per-epoch history and its final evaluation by
# `ferd.book.health.health_table`. Every other chapter records the same checks for its own runs, and the landing
# page summarises them:
#
# 1. **The teacher recognises the synthetic images.** Each synthetic image is generated for a sampled class. If
#    the teacher does not predict that class on it, the student is taught on images whose labels mean little,
#    and every class-by-class statement (which class is weak, which class to reweight) is about noise. We ask
#    the teacher to agree with the sampled label on at least {glue:text}`ch02_bar_pool`% of the pool at the last
#    epoch, and on at least {glue:text}`ch02_bar_class`% of the pool images of *every* class (M1 is the change
#    that made this possible).
# 2. **The FAE mask splits the channels.** FERD's uniformity term (chapter 4) acts on the teacher's
#    *non-robust* channels. If the mask calls every channel non-robust, the term asks the teacher's whole
#    prediction to be uniform, against the class term; if it calls none non-robust, the term does nothing. Either
#    way "FERD with FAE" is not the method of the paper (M2). Only methods with FAE are checked.
# 3. **The class weights do not collapse.** FERD's reweighting (chapter 3) should shift the mix of classes, not
#    hand nearly all new images to one class. A run fails when its largest class weight is above
#    {glue:text}`ch02_bar_weight` in more than half of its epochs.
# 4. **The student learns most of what the teacher knows.** A student far below its teacher has not been
#    distilled, and comparing its fairness with another's compares two failures. We ask for at least
#    {glue:text}`ch02_bar_clean_ratio`% of the teacher's clean accuracy, at least
#    {glue:text}`ch02_bar_pgd_ratio`% of its PGD accuracy, and every class above
#    {glue:text}`ch02_bar_class_clean`% clean accuracy.
#
# The methods trained on real data (RSLAD, Fair-RSLAD) have no generator, so the first three checks do not
# apply to them. DFHL labels each synthetic image with the teacher's own prediction, so its agreement is
# complete by construction and says nothing about its generator.

# %%
glue("ch02_bar_pool", f"{100 * ferd.book.health.MIN_AGREEMENT:.0f}", display=False)
glue("ch02_bar_class", f"{100 * ferd.book.health.MIN_CLASS_AGREEMENT:.0f}", display=False)
glue("ch02_bar_weight", f"{ferd.book.health.MAX_WEIGHT:g}", display=False)
glue("ch02_bar_clean_ratio", f"{100 * ferd.book.health.MIN_CLEAN_RATIO:.0f}", display=False)
glue("ch02_bar_pgd_ratio", f"{100 * ferd.book.health.MIN_PGD_RATIO:.0f}", display=False)
glue("ch02_bar_class_clean", f"{100 * ferd.book.health.MIN_CLASS_CLEAN:.0f}", display=False)
health = ferd.book.health.record_health([*health_cfgs.values(), *cfgs.values()], "02_diagnosis", profile)
health = health[health["run"].isin({run_key(c) for c in health_cfgs.values()})].reset_index(drop=True)
ferd.book.tables.save_results(health, "ch02_health", profile)
health_view = pd.DataFrame({
    "method": [ferd.book.plots.preset_label(m) for m in health["preset"]],
    "student": health["student"],
    "pool agreement (%)": 100 * health["agree_pool"],
    "worst-class agreement (%)": 100 * health["agree_pool_worst"],
    "non-robust channels, mean (%)": 100 * health["nonrobust_mean"],
    f"epochs with max p > {ferd.book.health.MAX_WEIGHT:g} (%)": 100 * health["max_p_above"],
    "clean (%)": 100 * health["clean"],
    "worst-class clean (%)": 100 * health["clean_worst"],
    "PGD (%)": 100 * health["pgd"],
    "preconditions": health["failed"].where(health["failed"] != "", "all met"),
}).set_index(["student", "method"] if len(students) > 1 else "method")
if len(students) == 1:
    health_view = health_view.drop(columns="student")
t_row = health.iloc[0]  # the same teacher for every run
teacher_note = (f"Teacher ({cfg.teacher.arch}): clean {100 * t_row['teacher_clean']:.1f}%, "
                f"PGD-{cfg.attack.pgd_steps} {100 * t_row['teacher_pgd']:.1f}%.")
bad = health[health["failed"] != ""]
if bad.empty:
    health_verdict = f"All {len(health)} runs meet the four preconditions, so their numbers can be read."
else:
    health_verdict = (f"{len(bad)} of {len(health)} runs miss at least one precondition: "
                      + "; ".join(f"{ferd.book.plots.preset_label(r.preset)}"
                                  + (f" with {r.student}" if len(students) > 1 else "")
                                  + ": " + r.failed.replace("; ", ", ") for r in bad.itertuples())
                      + ". Their numbers, here and in later chapters, come from runs that did not work as the "
                        "method assumes.")
diag = health[health["preset"] == preset]
if diag.empty:
    main_health = f"The runs diagnosed below ({ferd.book.plots.preset_label(preset)}) are not in `health_methods`."
elif (diag["failed"] == "").all():
    main_health = (f"The runs diagnosed in the rest of this chapter ({ferd.book.plots.preset_label(preset)}) are "
                   "healthy.")
else:
    main_health = (f"The runs diagnosed in the rest of this chapter ({ferd.book.plots.preset_label(preset)}) are not all "
                   "healthy, so the diagnosis below describes a miniature that fails the preconditions above.")
glue("ch02_health_verdict", health_verdict, display=False)
glue("ch02_health_main", main_health, display=False)
print(health_verdict)
health_view.style.format("{:.1f}", na_rep="-", subset=[c for c in health_view.columns if c.endswith("(%)")]) \
    .set_caption(teacher_note + " " + ferd.book.tables.provenance_caption(
        profile, cfg.dataset, seed, list(health["run"]) + [cfg.key("teacher")], paper_dataset=None))

# %% [markdown]
# {glue:text}`ch02_health_verdict` {glue:text}`ch02_health_main` A dash marks a check that does not apply: no
# generator (agreement), no FAE (non-robust channels), no class reweighting (max p).
#
# How does the agreement develop during a run? {numref}`fig-ch02-pool-agreement` shows the teacher's agreement
# with the sampled labels on the pool, overall and for the worst class, epoch by epoch, for FERD and plain DFRD on
# the {glue:text}`ch02_main` student, with the two bars dotted.

# %%
curves, styles = {}, {}
for i, (m, c) in enumerate(curve_cfgs.items()):
    h = experiments.distill(c, progress=False).history
    name = ferd.book.plots.preset_label(m)
    curves[f"{name}: whole pool"] = (h["epoch"], h["agree_pool"])
    curves[f"{name}: worst class"] = (h["epoch"], h["agree_pool_worst"])
    styles[f"{name}: whole pool"] = {"color": f"C{i}"}
    styles[f"{name}: worst class"] = {"color": f"C{i}", "ls": "--", "marker": "s"}
    last = h.iloc[-1]
    glue(f"ch02_agree_pool_{m}", f"{100 * last['agree_pool']:.1f}", display=False)
    glue(f"ch02_agree_worst_{m}", f"{100 * last['agree_pool_worst']:.1f}", display=False)
fig = ferd.book.plots.epoch_lines(curves, styles=styles, percent=True, ylim=(0, 1.02), ylabel="teacher agrees (%)",
                             bars=[(ferd.book.health.MIN_AGREEMENT, "bar: whole pool"),
                                   (ferd.book.health.MIN_CLASS_AGREEMENT, "bar: worst class")],
                             title=f"{main}: does the teacher recognise the synthetic pool?")
ferd.book.plots.save_figure(fig, "ch02_pool_agreement", folder=FIG_DIR)
glue("ch02_pool_agreement_fig", fig, display=False)
plt.close(fig)
glue("ch02_main", main, display=False)

# %% [markdown]
# ```{glue:figure} ch02_pool_agreement_fig
# :name: fig-ch02-pool-agreement
#
# The share (%) of the synthetic pool whose sampled label the teacher predicts, after each epoch, for FERD and
# plain DFRD (one colour each): over the whole pool (solid) and in the worst class (dashed). The dotted lines are
# the health bars for the whole pool and for the worst class.
# ```

# %% [markdown]
# At the last epoch the teacher recognises {glue:text}`ch02_agree_pool_ferd`% of FERD's pool (worst class
# {glue:text}`ch02_agree_worst_ferd`%) and {glue:text}`ch02_agree_pool_dfrd_plain`% of plain DFRD's (worst class
# {glue:text}`ch02_agree_worst_dfrd_plain`%).

# %% [markdown]
# ## The student against the teacher, class by class
#
# We evaluate the final student and the teacher with the same attacks on the same class-balanced evaluation
# set (both cached). {numref}`fig-ch02-student-vs-teacher` puts their per-class PGD accuracies side by side.

# %%
teacher_pc = experiments.evaluate_teacher(cfg, progress=False)
student_pc = {s: experiments.evaluate_student(c, progress=False) for s, c in cfgs.items()}
both = pd.concat([teacher_pc] + list(student_pc.values()), ignore_index=True)
both["who"] = np.where(both["checkpoint"] == "teacher", "teacher " + both["model"], "student " + both["model"])
pgd_both = both[both["attack"] == "pgd"]
stu_pgd = pgd_both[pgd_both["model"] == main].set_index("class_index")["accuracy"]
tea_pgd = pgd_both[pgd_both["checkpoint"] == "teacher"].set_index("class_index")["accuracy"]
fig = ferd.book.plots.per_class_bars(pgd_both, hue="who",
                                title=f"PGD-{cfg.attack.pgd_steps} accuracy per class: teacher vs {preset} student",
                                highlight=int(stu_pgd.idxmin()))
ferd.book.plots.save_figure(fig, "ch02_student_vs_teacher", folder=FIG_DIR)
glue("ch02_student_vs_teacher_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} ch02_student_vs_teacher_fig
# :name: fig-ch02-student-vs-teacher
#
# PGD accuracy (%) per class of the teacher and of each distilled student (one bar each) on the same evaluation
# set; the class in which the {glue:text}`ch02_main` student is weakest is labelled in bold.
# ```

# %% [markdown]
# The summary per attack and model, each cell "ours (paper)". The paper has no row for plain DFRD and no
# teacher row, so its values read n/r.

# %%
summ = experiments.summary(both.drop(columns="who"), cfg)
table = ferd.book.tables.side_by_side(summ, None, rows=["preset", "model"], cols="attack", metrics=("avg", "worst", "nsd"),
                                 labels={a: ferd.book.plots.attack_label(a, cfg) for a in summ["attack"]})
ferd.book.tables.save_results(summ, "ch02_summary", profile)
n_eval = teacher_pc.groupby("attack", sort=False)["count"].sum()
print("Evaluation images: " + ", ".join(f"{ferd.book.plots.attack_label(k, cfg)} on {v:,}" for k, v in n_eval.items()))
print(ferd.book.tables.provenance_caption(profile, cfg.dataset, seed, [run_key(c) for c in cfgs.values()]
                                    + [cfg.key("teacher")]))
table

# %% [markdown]
# How much robustness does each class lose in distillation, and which class is now the weakest?

# %%
s_sum = summ[(summ["model"] == main) & (summ["attack"] == "pgd")].iloc[0]
t_sum = summ[(summ["checkpoint"] == "teacher") & (summ["attack"] == "pgd")].iloc[0]
loss_per_class = (tea_pgd - stu_pgd)
worst_student = [classes[c] for c in stu_pgd.index[stu_pgd == stu_pgd.min()]]
# per-class numbers get the decimals their images per class allow (1,000 images: 0.1 points)
per_class_images = float(teacher_pc[teacher_pc["attack"] == "pgd"]["count"].min())
dc = ferd.book.tables.resolution_digits(per_class_images)
if worst_student == [expected_worst]:
    verdict = f"As expected, {expected_worst} is the student's worst class under PGD."
elif expected_worst in worst_student:
    verdict = (f"{expected_worst} shares the student's lowest PGD accuracy with "
               f"{', '.join(c for c in worst_student if c != expected_worst)}.")
else:
    verdict = (f"The student's worst class under PGD is {', '.join(worst_student)}, not {expected_worst} "
               f"({expected_worst}: {100 * float(stu_pgd[classes.index(expected_worst)]):.{dc}f}%).")
nsd_word = "higher" if s_sum["nsd"] > t_sum["nsd"] else "not higher"
glue("ch02_student_pgd_avg", f"{100 * s_sum['avg']:.2f}", display=False)
glue("ch02_student_pgd_worst", f"{100 * s_sum['worst']:.{dc}f}", display=False)
glue("ch02_student_pgd_nsd", f"{s_sum['nsd']:.3f}", display=False)
glue("ch02_teacher_pgd_nsd", f"{t_sum['nsd']:.3f}", display=False)
glue("ch02_nsd_word", nsd_word, display=False)
glue("ch02_worst_verdict", verdict, display=False)
glue("ch02_most_lost", classes[int(loss_per_class.idxmax())], display=False)
glue("ch02_most_lost_pts", f"{100 * float(loss_per_class.max()):.{dc}f}", display=False)
pd.DataFrame({"class": classes, "teacher PGD (%)": (100 * tea_pgd.values).round(dc),
              "student PGD (%)": (100 * stu_pgd.values).round(dc),
              "lost (points)": (100 * loss_per_class.values).round(dc)})

# %% [markdown]
# The {glue:text}`ch02_nsd_word` NSD of the student ({glue:text}`ch02_student_pgd_nsd` against the teacher's
# {glue:text}`ch02_teacher_pgd_nsd`) measures the unevenness: its PGD accuracy averages
# {glue:text}`ch02_student_pgd_avg`% with a worst class at {glue:text}`ch02_student_pgd_worst`%.
# {glue:text}`ch02_worst_verdict` The class that loses most in distillation is {glue:text}`ch02_most_lost`
# ({glue:text}`ch02_most_lost_pts` points).
#
# ## Does the gap grow during distillation?
#
# During training the library tracks the student's clean and PGD accuracy per class on a fixed, smaller
# class-balanced subset of the test set, every few epochs (columns `acc_pgd_<c>` of the history). We measure
# the inter-class gap and the NSD at each evaluated epoch $e$:
#
# $$
# \mathrm{gap}(e) = \max_c a_c(e) - \min_c a_c(e), \qquad \mathrm{NSD}(e) = \sigma_c\big(a_c(e)\big) / \mu_c\big(a_c(e)\big).
# $$ (ch02-gap)
#
# Epochs inside the warm-up are left out: there the student has not been trained yet, and an untrained
# network that predicts one class everywhere has the largest possible gap. {numref}`fig-ch02-gap-over-epochs`
# shows the per-class accuracies and both measures.

# %%
track = hist[hist["acc_pgd"].notna() & (hist["epoch"] > d.warmup)].reset_index(drop=True)
acc = track[[f"acc_pgd_{c}" for c in range(C)]].to_numpy()
track_gap = acc.max(axis=1) - acc.min(axis=1)
track_nsd = np.array([metrics.nsd(row, cfg.attack.nsd_std) for row in acc])
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [1.5, 1]})
ferd.book.plots.class_curves(track["epoch"], 100 * acc, classes, ax=axes[0], ylabel="PGD accuracy (%)",
                        title=f"{main}: per-class PGD accuracy", highlight=int(np.argmin(acc[-1])), marker="o")
axes[1].plot(track["epoch"], 100 * track_gap, marker="o", label="gap max - min (points)")
axes[1].set_xlabel("epoch")
axes[1].set_ylabel("gap (points)")
ax2 = axes[1].twinx()
ax2.plot(track["epoch"], track_nsd, marker="s", color="C3", label="NSD")
ax2.set_ylabel("NSD")
ax2.grid(False)
axes[1].set_title("inter-class gap and NSD")
h1, l1 = axes[1].get_legend_handles_labels()
h2, l2 = ax2.get_legend_handles_labels()
axes[1].legend(h1 + h2, l1 + l2, fontsize="small", loc="best")
fig.tight_layout()
ferd.book.plots.save_figure(fig, "ch02_gap_over_epochs", folder=FIG_DIR)
glue("ch02_gap_over_epochs_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} ch02_gap_over_epochs_fig
# :name: fig-ch02-gap-over-epochs
#
# Left: the {glue:text}`ch02_main` student's PGD accuracy (%) per class at each evaluated epoch after the
# warm-up, one line per class, the weakest class at the last epoch drawn thicker. Right: the gap between the best
# and the worst class (points, left axis) and the NSD (right axis) at the same epochs {eq}`ch02-gap`.
# ```

# %% [markdown]
# The gap at the first and the last evaluated epoch, and whether it grew:

# %%
# the tracking subset has d.track_per_class images per class: its per-class step is 100 / n points
dt = ferd.book.tables.resolution_digits(d.track_per_class)
dt_avg = ferd.book.tables.resolution_digits(d.track_per_class * C)
gap_table = pd.DataFrame({"epoch": track["epoch"], "PGD Avg (%)": (100 * acc.mean(axis=1)).round(dt_avg),
                          "gap (points)": (100 * track_gap).round(dt), "NSD": track_nsd.round(3)})
ferd.book.tables.save_results(gap_table, "ch02_gap", profile)
if len(track) >= 2:
    g0, g1 = 100 * track_gap[0], 100 * track_gap[-1]
    n0, n1 = track_nsd[0], track_nsd[-1]
    if g1 > g0 and n1 > n0:
        growth = ("Both the gap and the NSD grew between the first and the last evaluated epoch, as the paper "
                  "reports for its CIFAR-10 students.")
    elif g1 > g0 or n1 > n0:
        growth = ("Only one of the two measures grew (" + ("the gap" if g1 > g0 else "the NSD")
                  + "), so the paper's observation holds only partly here.")
    else:
        growth = ("Neither the gap nor the NSD grew between the first and the last evaluated epoch: unlike the "
                  "paper's CIFAR-10 students, this run does not show a widening gap.")
    glue("ch02_gap_first", f"{g0:.{dt}f}", display=False)
    glue("ch02_gap_last", f"{g1:.{dt}f}", display=False)
    glue("ch02_gap_first_epoch", str(int(track["epoch"].iloc[0])), display=False)
    glue("ch02_gap_last_epoch", str(int(track["epoch"].iloc[-1])), display=False)
else:
    growth = "Only one epoch was evaluated after the warm-up, so the growth of the gap cannot be measured."
    for key in ("ch02_gap_first", "ch02_gap_last", "ch02_gap_first_epoch", "ch02_gap_last_epoch"):
        glue(key, "n/a", display=False)
glue("ch02_gap_growth", growth, display=False)
print(growth)
gap_table

# %% [markdown]
# The gap is {glue:text}`ch02_gap_first` points at epoch {glue:text}`ch02_gap_first_epoch` and
# {glue:text}`ch02_gap_last` points at epoch {glue:text}`ch02_gap_last_epoch`. {glue:text}`ch02_gap_growth`
#
# ## Where do attacks push each class?
#
# The second observation concerns the *direction* of successful attacks. We attack every evaluation image
# with untargeted PGD and count, for each true (source) class $c$, the fraction of its images that the student
# then assigns to each class $j$:
#
# $$
# A[c, j] = \frac{\big|\{i : y_i = c,\ \arg\max f^S(x_i^{adv}) = j\}\big|}{\big|\{i : y_i = c\}\big|}.
# $$ (ch02-confusion)
#
# The diagonal is the per-class robust accuracy; the off-diagonal mass shows which wrong classes absorb the
# attacks (`ferd.toolkit.evaluate.attack_confusion`). {numref}`fig-ch02-attack-confusion` shows $A$ for the
# {glue:text}`ch02_main` student.

# %%
split = experiments.eval_split(cfg)
a = cfg.attack
pgd_attack = PGD(res.student, eps=a.eps, alpha=a.alpha, steps=a.pgd_steps, seed=seed)
A = attack_confusion(res.student, split, pgd_attack, C, batch_size=a.eval_batch_size, device=device,
                     normalize=True)
fig = ferd.book.plots.heatmap(A, classes, classes, xlabel="predicted class after PGD (target)",
                         ylabel="true class (source)", vmin=0, vmax=1,
                         title=f"{main}: where untargeted PGD sends each class")
ferd.book.plots.save_figure(fig, "ch02_attack_confusion", folder=FIG_DIR)
glue("ch02_attack_confusion_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} ch02_attack_confusion_fig
# :name: fig-ch02-attack-confusion
#
# The matrix $A$ of {eq}`ch02-confusion` for the {glue:text}`ch02_main` student: row $c$ (true class) gives
# the fraction of its evaluation images that the student assigns to each class (column) after untargeted PGD.
# The diagonal is the per-class robust accuracy; brighter cells are larger fractions.
# ```

# %% [markdown]
# The strongest off-diagonal flows, and how concentrated each class's errors are: for each source class the
# share of its misclassified images that land in its single most frequent wrong class.

# %%
off = A.copy()
np.fill_diagonal(off, np.nan)
flows = (pd.DataFrame(off, index=classes, columns=classes).stack().rename("fraction").reset_index()
         .rename(columns={"level_0": "source", "level_1": "target"}).sort_values("fraction", ascending=False))
top = flows.iloc[0]
wrong = np.nansum(off, axis=1)
concentration = np.divide(np.nanmax(np.nan_to_num(off, nan=-1), axis=1), wrong, out=np.full(C, np.nan),
                          where=wrong > 0)
glue("ch02_top_source", str(top["source"]), display=False)
glue("ch02_top_target", str(top["target"]), display=False)
glue("ch02_top_fraction", f"{100 * float(top['fraction']):.{dc}f}", display=False)
glue("ch02_concentration", f"{100 * float(np.nanmean(concentration)):.1f}" if np.isfinite(concentration).any()
     else "n/a", display=False)
(flows.head(8).reset_index(drop=True).assign(fraction=lambda f: (100 * f["fraction"]).round(dc))
 .rename(columns={"fraction": "fraction (%)"}))

# %% [markdown]
# The largest flow sends {glue:text}`ch02_top_fraction`% of the {glue:text}`ch02_top_source` images to
# {glue:text}`ch02_top_target`. On average over the classes with errors, {glue:text}`ch02_concentration`% of a
# class's successful attacks end in one single wrong class: the attacks do not spread evenly over the possible
# targets (which would give $1/(C-1)$ each). This is the asymmetry that FERD's uniform-target adversarial
# examples (chapter 5) address.
#
# A targeted attack asks a sharper question: how easy is it to push class $c$ *into a chosen class* $j$? For
# each target $j$ we run targeted PGD (descending the cross-entropy of class $j$) on the first
# `targeted_per_class` images of every other class and record the success rate $S[c, j]$.

# %%
if targeted_per_class > 0:
    S = targeted_success_matrix(res.student, split, a.eps, a.alpha, a.pgd_steps, C, per_class=targeted_per_class,
                                batch_size=a.eval_batch_size, device=device, seed=seed)
    fig = ferd.book.plots.heatmap(S, classes, classes, xlabel="target class j", ylabel="source class c", vmin=0, vmax=1,
                             title=f"{main}: targeted PGD success rate S[c, j]")
    ferd.book.plots.save_figure(fig, "ch02_targeted_success", folder=FIG_DIR)
    easiest = np.unravel_index(np.nanargmax(S), S.shape)
    glue("ch02_targeted_note", f"The easiest targeted move is {classes[easiest[0]]} into {classes[easiest[1]]} "
         f"({100 * S[easiest]:.{ferd.book.tables.resolution_digits(targeted_per_class)}f}% success); the hardest "
         "target overall is "
         f"{classes[int(np.nanargmin(np.nanmean(S, axis=0)))]}.", display=False)
else:
    glue("ch02_targeted_note", "The targeted matrix was skipped (targeted_per_class = 0).", display=False)
    fig, ax = plt.subplots(figsize=(6, 1.2))  # a note in place of the figure, which the text refers to
    ax.set_axis_off()
    ax.text(0.5, 0.5, "targeted matrix skipped (targeted_per_class = 0)", ha="center", va="center",
            transform=ax.transAxes, fontsize="small", color="grey")
glue("ch02_targeted_success_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} ch02_targeted_success_fig
# :name: fig-ch02-targeted-success
#
# The success rate $S[c, j]$ of targeted PGD against the {glue:text}`ch02_main` student: the fraction of the
# attacked images of source class $c$ (row) that end up classified as target class $j$ (column); brighter cells
# are easier moves. When `targeted_per_class` is 0 the figure is a note saying so.
# ```
#
# {glue:text}`ch02_targeted_note` In {numref}`fig-ch02-targeted-success`, rows with bright cells are classes that
# an attacker can steer almost anywhere; columns with bright cells are "attractor" classes.
#
# ## What we take from the diagnosis
#
# Plain data-free distillation treats all classes alike: equal numbers of synthetic images, an adversarial
# attack that goes wherever it is easiest. In this one run the student starts from the teacher's weak classes,
# and the gap table above says whether it widened; one seed describes a run, it does not give a verdict. FERD
# changes both the *proportion* of synthetic images per class (chapter 3) and the *distribution* of the clean and
# adversarial samples (chapters 4 and 5).
#
# ## Exercises
#
# 1. Add `"fmnist-mobilenet"` to `students`. Is the same class the weakest, and does the gap grow the same way
#    for a MobileNet-style student?
# 2. The gap in {eq}`ch02-gap` uses only the best and the worst class. Plot instead the standard deviation of
#    the per-class accuracies over epochs. Does it tell a different story from the NSD?
# 3. Compute the attack matrix {eq}`ch02-confusion` for the teacher (`experiments.teacher(cfg)`). Are the
#    student's dominant flows inherited from the teacher?
# 4. The tracking subset has only `cfg.distill.track_per_class` images per class. Estimate the standard error
#    of a per-class accuracy of 30% on that many images and decide which epoch-to-epoch changes in
#    {numref}`fig-ch02-gap-over-epochs` are larger than noise.
