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
# # 1. The robust teacher
#
# Data-free robustness distillation starts from a network that is already robust to small adversarial
# perturbations, the *teacher*, and tries to transfer that robustness to a smaller *student* without ever
# seeing the teacher's training data. Everything the student learns comes through the teacher, so the teacher
# sets the ceiling. FERD, the method this book reproduces, is about *fairness* of robustness: how evenly it is
# spread over the classes. **So before any distillation: how robust is our teacher, and how unevenly is its
# robustness spread over the ten Fashion-MNIST classes?**
#
# This chapter loads the teacher (the `cpu` profile's ships with the package; otherwise it is trained into the
# artifact store), shows its training curves, evaluates it class by class under every attack of the profile, and
# checks it against the preconditions a teacher must meet before distilling from it makes sense. The paper does
# not report its teachers' per-class numbers (a reviewer asked for them); we do.

# %% [markdown]
# ```{admonition} Open this chapter as a notebook
# :class: tip
# This page is `notebooks/01_teacher.py` executed. To run it yourself, open it in Jupyter as a notebook
# (`jupytext --to ipynb notebooks/01_teacher.py`), or re-run it with other parameters (the cell tagged `parameters`
# lists them): `ferd book --only 01`, or
# `jupytext --to ipynb notebooks/01_teacher.py -o - | papermill - out.ipynb -p profile smoke` ({doc}`../reproduce`).
# ```

# %% [markdown]
# The parameters of the chapter. `profile` selects the schedule (`smoke` for a seconds-long test, `cpu` for the
# book's numbers); the teacher does not depend on the preset or the student, which are only needed to build a
# complete configuration.

# %% tags=["parameters"]
profile = "cpu"  # "smoke" (tiny, numbers meaningless), "cpu" (the book) or "paper" (GPU, CIFAR)
seed = 0  # seed of the teacher's training and of the attacks' random starts
device = "cpu"  # "cpu", "cuda" or "auto"
preset = "ferd"  # any preset: the teacher is shared by all of them
student = "fmnist-resnet"  # student architecture (not used here beyond the configuration)
expected_worst = "Shirt"  # the class the method specification (section 8) expects to be the weakest
retrain_teacher = False  # True trains the teacher again into the artifact store instead of loading the shipped checkpoint (about 40 minutes on 2 CPU cores at the cpu profile)

# %% [markdown]
# The next cell imports the library and builds the configuration; a bad parameter fails here with a
# `ConfigError` that names it.

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
import scipy.stats
import torch
from matplotlib.ticker import MaxNLocator
from myst_nb import glue

import ferd.book.plots
import ferd.book.runner
import ferd.book.tables
from ferd.book import experiments
from ferd.book.claims import Claim, save_claims
from ferd.config import make_config
from ferd.method.teachers import shipped_teacher_path, shipped_teachers, train_teacher, training_subset
from ferd.toolkit.models import create_model

ferd.book.plots.set_style()
FIG_DIR = ferd.book.runner.output_dir("figures", profile)
cfg = make_config(profile, preset, overrides=dict(student=student, seed=seed, device=device))
print(f"profile {cfg.profile}, dataset {cfg.dataset}, teacher {cfg.teacher.arch}, teacher hash {cfg.key('teacher')}")

# %% [markdown]
# ## The recipe: adversarial training
#
# A classifier $f_\theta$ is *robust at budget* $\epsilon$ on an image $x$ with label $y$ if no perturbation
# $\delta$ with $\|\delta\|_\infty \le \epsilon$ (every pixel moved by at most $\epsilon$, pixels in $[0,1]$)
# changes its prediction. PGD adversarial training (PGD-AT, Madry et al.) makes a network robust by training
# it on the worst perturbation it can find for each training image:
#
# $$
# \min_\theta \; \mathbb{E}_{(x,y)} \Big[ \max_{\|\delta\|_\infty \le \epsilon}
#   \mathrm{CE}\big(f_\theta(x+\delta),\, y\big) \Big].
# $$ (ch01-pgd-at)
#
# The inner maximisation is approximated by projected gradient ascent (PGD): start from a random point in the
# $\epsilon$-ball and take signed gradient steps of size $\alpha$, projecting back into the ball and into the
# valid pixel range after each step,
#
# $$
# x^{k+1} = \mathrm{clip}_{[0,1]}\Big(\mathrm{clip}_{[x-\epsilon,\,x+\epsilon]}\big(x^{k}
#   + \alpha\,\mathrm{sign}\,\nabla_{x^k}\mathrm{CE}(f_\theta(x^k), y)\big)\Big).
# $$ (ch01-pgd-step)
#
# The same update, with more steps, is the PGD attack we evaluate with. PGD-AT trains only on perturbed images,
# and pays for its robustness with clean accuracy. TRADES (Zhang et al.) keeps the clean loss and adds a term
# that asks the prediction not to change inside the $\epsilon$-ball, weighted by $\beta$:
#
# $$
# \min_\theta \; \mathbb{E}_{(x,y)} \Big[ \mathrm{CE}\big(f_\theta(x),\, y\big) + \beta
#   \max_{\|\delta\|_\infty \le \epsilon} \mathrm{KL}\big(p_\theta(x) \,\|\, p_\theta(x+\delta)\big) \Big],
# $$ (ch01-trades)
#
# where $p_\theta$ is the softmax of $f_\theta$; the inner maximum is found by the steps of {eq}`ch01-pgd-step`
# with the KL term in place of the cross-entropy (KL-PGD). The table below lists the recipe of this profile (for
# Fashion-MNIST the `cpu` profile's budget is $\epsilon =$ {glue:text}`ch01_cpu_eps`, the usual one for this
# dataset).

# %%
t, a = cfg.teacher, cfg.attack
METHOD_NAMES = {"trades": "TRADES", "pgd_at": "PGD-AT", "fgsm_rs": "FGSM-RS", "natural": "natural training"}


def describe_arch(model) -> str:
    """A plain description of an architecture: the layout of the small CNNs, otherwise the class name."""
    convs = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    if type(model).__name__ == "FashionCNN":
        k = model.head_pool
        head = "global average pooling" if k == 1 else f"a head that average-pools the 7x7 feature map to {k}x{k}"
        return f"a {len(convs)}-layer CNN with widths {'/'.join(map(str, convs))} and {head}"
    return type(model).__name__


def n_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())

arch_model = create_model(t.arch, num_classes=cfg.num_classes)
n_params = n_parameters(arch_model)
train_split = training_subset(cfg)
n_train = len(train_split)
method = METHOD_NAMES.get(t.method, t.method)
train_images = (f"{n_train:,} (all)" if not t.train_size
                else f"{n_train:,} (the first {n_train // cfg.num_classes:,} of each class)")
drops = ", ".join(map(str, t.milestones)) or "none"
inner = "KL-PGD" if t.method == "trades" else "PGD"
tracking = (f"clean and {ferd.book.plots.attack_label('pgd', cfg)} on the first {t.track_per_class} test images of "
            f"each class" if t.track_per_class else "off")
rows = [("architecture", f"{t.arch}: {describe_arch(arch_model)}"),
        ("parameters", f"{n_params:,}"),
        ("training method", method)]
if t.method == "trades":
    rows.append(("TRADES beta", f"{t.trades_beta:g}"))
rows += [
    ("training images (first n, class-balanced; 0 = all)", f"{train_images}; train_size = {t.train_size}"),
    ("epochs", t.epochs),
    ("batch size", t.batch_size),
    ("SGD learning rate (momentum 0.9)", f"{t.lr:g}"),
    ("learning-rate drops (x0.1 after epochs)", drops),
    ("weight decay", f"{t.weight_decay:g}"),
    ("budget eps (L-inf, pixels in [0, 1])", f"{a.eps:g}"),
    ("attack step alpha", f"{a.alpha:g}"),
    (f"{inner} steps inside training", t.attack_steps),
    ("accuracy tracked after every epoch", tracking),
]
recipe = pd.DataFrame(rows, columns=["setting", "value"])
recipe["value"] = recipe["value"].astype(str)
if t.method == "fgsm_rs":
    schedule = f"a cyclic learning rate peaking at {t.lr:g}"
elif t.milestones:
    schedule = (f"learning rate {t.lr:g}, multiplied by 0.1 after epoch{'s' if len(t.milestones) > 1 else ''} "
                f"{' and '.join(map(str, t.milestones))}")
else:
    schedule = f"a constant learning rate of {t.lr:g}"
glue("ch01_eps", f"{a.eps:g}", display=False)
glue("ch01_train_steps", str(t.attack_steps), display=False)
glue("ch01_epochs", str(t.epochs), display=False)
glue("ch01_method", method + (f" (β = {t.trades_beta:g})" if t.method == "trades" else ""), display=False)
glue("ch01_inner", inner, display=False)
glue("ch01_n_train", train_images, display=False)
glue("ch01_schedule", schedule, display=False)
glue("ch01_arch", f"{t.arch}, {describe_arch(arch_model)}", display=False)
glue("ch01_params", f"{n_params:,}", display=False)
recipe

# %% [markdown]
# The teacher is {glue:text}`ch01_arch`, with {glue:text}`ch01_params` parameters. It is trained with
# {glue:text}`ch01_method` for {glue:text}`ch01_epochs` epochs on {glue:text}`ch01_n_train` training images,
# with a {glue:text}`ch01_train_steps`-step {glue:text}`ch01_inner` inner attack at
# $\epsilon =$ {glue:text}`ch01_eps` and {glue:text}`ch01_schedule`.
#
# ## Why this teacher
#
# The cell below gathers the sizes and the bars that the rest of this section refers to (the teacher of the
# `cpu` profile, which the book's numbers come from, whatever profile this page was executed at).

# %% tags=["hide-input"]
cpu_cfg = make_config("cpu", preset, overrides=dict(student=student, seed=seed))
ct = cpu_cfg.teacher
cpu_model = create_model(ct.arch, num_classes=cpu_cfg.num_classes)
old_arch = "fmnist-cnn"  # the spec's teacher, the cpu profile's teacher before this one
old_model = create_model(old_arch, num_classes=cpu_cfg.num_classes)
students = {s: n_parameters(create_model(s, num_classes=cpu_cfg.num_classes))
            for s in ("fmnist-resnet", "fmnist-mobilenet")}
# The preconditions the project requires of a teacher before distilling from it (its own bars, not the paper's)
REQUIRED = {"clean_avg": 0.84, "clean_class": 0.40, "pgd_worst": 0.15}

old_file = ferd.book.runner.ROOT / "results" / f"teacher_{cpu_cfg.dataset}_{old_arch}_cpu_per_class.csv"
if old_file.exists():
    old = pd.read_csv(old_file)
    old_pgd = old[old["attack"] == "pgd"].set_index("class_name")["accuracy"]
    old_clean = old[old["attack"] == "clean"].set_index("class_name")["accuracy"]
    old_worst = old_pgd.idxmin()
    old_sentence = (f"its worst class, {old_worst}, was right {100 * old_clean[old_worst]:.0f}% of the time on clean "
                    f"images and {100 * old_pgd[old_worst]:.0f}% under {ferd.book.plots.attack_label('pgd', cpu_cfg)} "
                    f"(results/{old_file.name})")
else:
    old_sentence = "its worst class, Shirt, was almost never right under attack"
cpu_params = n_parameters(cpu_model)
cpu_n_train = len(training_subset(cpu_cfg))
cpu_method = METHOD_NAMES.get(ct.method, ct.method)
glue("ch01_cpu_method", cpu_method + (f" (β = {ct.trades_beta:g})" if ct.method == "trades" else ""), display=False)
glue("ch01_cpu_epochs", str(ct.epochs), display=False)
glue("ch01_cpu_n_train", f"all {cpu_n_train:,}" if not ct.train_size else f"{cpu_n_train:,}", display=False)
glue("ch01_cpu_arch", f"{ct.arch}, {describe_arch(cpu_model)}", display=False)
glue("ch01_cpu_params", f"{cpu_params:,}", display=False)
glue("ch01_cpu_lr", f"{ct.lr:g}", display=False)
glue("ch01_cpu_eps", f"{cpu_cfg.attack.eps:g}", display=False)
glue("ch01_cpu_pgd", ferd.book.plots.attack_label("pgd", cpu_cfg), display=False)
glue("ch01_old_arch", f"{old_arch}, {describe_arch(old_model)}", display=False)
glue("ch01_old_params", f"{n_parameters(old_model):,}", display=False)
glue("ch01_old_sentence", old_sentence, display=False)
glue("ch01_student_params", " and ".join(f"{n:,} ({s})" for s, n in students.items()), display=False)
glue("ch01_ratio", " and ".join(f"{cpu_params / n:.1f}x" for n in students.values()), display=False)
glue("ch01_req_clean_avg", f"{100 * REQUIRED['clean_avg']:.0f}", display=False)
glue("ch01_req_clean_class", f"{100 * REQUIRED['clean_class']:.0f}", display=False)
glue("ch01_req_pgd_worst", f"{100 * REQUIRED['pgd_worst']:.0f}", display=False)
print(f"cpu teacher {ct.arch}: {cpu_params:,} parameters; students: "
      + ", ".join(f"{s} {n:,}" for s, n in students.items()))

# %% [markdown]
# The `cpu` profile's first teacher was the specification's {glue:text}`ch01_old_arch`
# ({glue:text}`ch01_old_params` parameters), trained with PGD-AT for 4 epochs on 20,000 images. It was robust
# on average but not for every class: {glue:text}`ch01_old_sentence`. A student learns its classes from the
# teacher, so no student distilled from it could be much fairer than it, and a fairness method has nothing to
# repair if the class it should help is already lost in the teacher.
#
# The paper distils from strong teachers, several times larger than their students (its pairs compress by
# 4x to 20x). We turn the first condition into three bars the teacher must clear: at least
# {glue:text}`ch01_req_clean_avg`% clean accuracy on average, at least {glue:text}`ch01_req_clean_class`% clean
# accuracy in every class, and at least {glue:text}`ch01_req_pgd_worst`% accuracy in its worst class under
# {glue:text}`ch01_cpu_pgd` at $\epsilon =$ {glue:text}`ch01_cpu_eps`. They are this project's bars, not numbers
# from the paper; the section "Preconditions" below checks them. For the second condition: our students have
# {glue:text}`ch01_student_params` parameters.
#
# The teacher of the `cpu` profile is therefore {glue:text}`ch01_cpu_arch`: {glue:text}`ch01_cpu_params`
# parameters, {glue:text}`ch01_ratio` the size of the two students. Its head keeps a coarse spatial layout
# (roughly, where the sleeves and the collar are), which global average pooling throws away and which may help
# to tell Shirt from T-shirt/top, Pullover and Coat. It is trained with {glue:text}`ch01_cpu_method`
# {eq}`ch01-trades` for {glue:text}`ch01_cpu_epochs` epochs on {glue:text}`ch01_cpu_n_train` training images.
# TRADES was chosen over PGD-AT for its clean accuracy: its loss keeps the cross-entropy on the clean image,
# while PGD-AT trains on perturbed images only. The learning rate is {glue:text}`ch01_cpu_lr` because with 0.1
# the training diverged (the loss became NaN) within its first steps.
#
# ## Training
#
# `ferd.method.teachers.train_teacher` returns the teacher and its training history, one row per epoch (below,
# its overall columns; the per-class ones are the heat map further down). The `cpu`
# profile's teacher was trained once and ships with the package (the next section shows where it comes from),
# so by default it is loaded, not trained; `retrain_teacher = True` trains it again into the artifact store,
# which takes far longer than loading it. Any other teacher is trained once into the store, keyed by a hash
# of its recipe, and every later chapter loads the same weights.

# %%
teacher, history = train_teacher(cfg, progress=False, use_shipped=not retrain_teacher)
glue("ch01_final_loss", f"{history['train_loss'].iloc[-1]:.3f}", display=False)
# the overall columns, in percent; the per-class ones (acc_pgd_0, ...) are drawn as a heat map below
HISTORY_NAMES = {"lr": "learning rate", "train_loss": "training loss", "acc_clean": "tracked clean (%)",
                 "worst_clean": "tracked clean, worst class (%)", "acc_pgd": "tracked PGD (%)",
                 "worst_pgd": "tracked PGD, worst class (%)"}
shown_history = history[[c for c in history.columns if not c[-1].isdigit()]].copy()
percent = [c for c in shown_history.columns if c.startswith(("acc_", "worst_"))]
shown_history[percent] = 100 * shown_history[percent]
shown_history.rename(columns=HISTORY_NAMES).set_index("epoch")

# %% [markdown]
# ## Where the teacher comes from

# %%
shipped = None if retrain_teacher else shipped_teacher_path(cfg)
if shipped is not None:
    entry = shipped_teachers()[cfg.key("teacher")]
    source = pd.DataFrame([
        ("file", f"ferd/shipped/{entry['file']}"),
        ("sha256 (first 16 hex digits)", entry["sha256"][:16]),
        ("trained by", entry.get("command") or "(not recorded)"),
        ("git commit", entry.get("git_commit") or "(not recorded)"),
        ("torch version", entry.get("torch_version") or "(not recorded)"),
        ("created", entry.get("created") or "(not recorded)"),
    ], columns=["shipped teacher", "value"])
    source_sentence = (f"The teacher was loaded from the checkpoint shipped with the package, "
                       f"ferd/shipped/{entry['file']}, after checking its sha256 against the manifest "
                       f"ferd/shipped/teachers.json.")
else:
    why = ("retrain_teacher is True" if retrain_teacher else "no checkpoint ships for this recipe")
    source = None
    source_sentence = (f"The teacher was trained by train_teacher into the artifact store "
                       f"(teacher/{cfg.key('teacher')}/teacher.pt), because {why}; later runs load it from there.")
print(source_sentence)
source

# %% [markdown]
# {numref}`fig-ch01-training-curve` shows the training curves. Left: the training loss ({eq}`ch01-pgd-at` for PGD-AT, {eq}`ch01-trades` for TRADES,
# at the point the inner attack found) falls while the learning rate steps down; it ends at
# {glue:text}`ch01_final_loss`. Right, when the training recorded it: the accuracy after every epoch on a fixed
# class-balanced set of test images, clean and under PGD, overall and in the worst class, with the bars of the
# preconditions as dotted lines.

# %%
tracked = {"acc_clean", "acc_pgd", "worst_clean", "worst_pgd"} <= set(history.columns)
pgd_label = ferd.book.plots.attack_label("pgd", cfg)
fig, (ax, axr) = plt.subplots(1, 2, figsize=(11, 3.6))
ax.plot(history["epoch"], history["train_loss"], marker="o", label=f"training loss ({method})")
ax.set_xlabel("epoch")
ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax.set_ylabel("loss at the attack's point")
ax2 = ax.twinx()
ax2.step(history["epoch"], history["lr"], where="post", color="grey", ls="--", label="learning rate")
ax2.set_ylabel("learning rate")
ax2.grid(False)
ax.set_title(f"Teacher training ({cfg.teacher.method}, eps = {cfg.attack.eps:g})")
h1, l1 = ax.get_legend_handles_labels()
h2, l2 = ax2.get_legend_handles_labels()
ax.legend(h1 + h2, l1 + l2, fontsize="small", loc="upper right")
if tracked:
    colors = ferd.book.plots.class_colors(2)
    lines = [("acc_clean", "clean, overall", colors[0], "-"), ("worst_clean", "clean, worst class", colors[0], "--"),
             ("acc_pgd", f"{pgd_label}, overall", colors[1], "-"), ("worst_pgd", f"{pgd_label}, worst class",
                                                                    colors[1], "--")]
    for col, label, color, ls in lines:
        axr.plot(history["epoch"], 100 * history[col], color=color, ls=ls, marker="o", ms=3, label=label)
    for key, color, text in (("clean_class", colors[0], "bar: every class, clean"),
                             ("pgd_worst", colors[1], "bar: worst class under attack")):
        axr.axhline(100 * REQUIRED[key], color=color, lw=0.8, ls=(0, (1, 2)))
        axr.annotate(f"{text} >= {100 * REQUIRED[key]:.0f}%", (0.01, 100 * REQUIRED[key]),
                     xycoords=("axes fraction", "data"), fontsize="x-small", color=color, va="bottom")
    axr.set_ylim(0, 100)
    axr.set_xlabel(f"epoch (accuracy on {cfg.teacher.track_per_class} test images per class)")
    axr.set_ylabel("accuracy (%)")
    axr.xaxis.set_major_locator(MaxNLocator(integer=True))
    axr.set_title("Accuracy after each epoch")
    axr.legend(fontsize="x-small", ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.22))
else:
    axr.set_axis_off()
    axr.set_title("No per-epoch accuracy in this history")
    axr.text(0.5, 0.5, "the training did not track accuracy\n(teacher.track_per_class = 0)", ha="center",
             va="center", transform=axr.transAxes, fontsize="small", color="grey")
    print("This history has no per-epoch accuracy (teacher.track_per_class = 0), so the right panel is empty.")
fig.tight_layout()
ferd.book.plots.save_figure(fig, "ch01_training_curve", folder=FIG_DIR)
glue("ch01_training_curve_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} ch01_training_curve_fig
# :name: fig-ch01-training-curve
#
# The teacher's training. Left: the training loss per epoch (solid, left axis) and the learning rate (grey,
# dashed, right axis). Right: the accuracy after each epoch on a fixed class-balanced set of test images, clean
# (blue) and under PGD (orange), overall (solid) and in the worst class (dashed); the dotted lines are the bars of
# the preconditions. The right panel is empty when the training did not track accuracy.
# ```
#
# Per class: {numref}`fig-ch01-training-per-class` shows the PGD accuracy of each class after every epoch (when
# the training recorded it). A class that stays dark is one the teacher never learns to defend.

# %%
pgd_cols = [f"acc_pgd_{c}" for c in range(cfg.num_classes)]
if set(pgd_cols) <= set(history.columns):
    names = train_split.classes
    m = 100 * history[pgd_cols].to_numpy(dtype=float).T  # [classes, epochs]
    small = cfg.num_classes <= 10
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * max(len(history), 6), 0.9 + (0.32 if small else 0.05) * len(names)))
    ferd.book.plots.heatmap(m, names if small else [""] * len(names), history["epoch"].astype(int).tolist(), ax=ax,
                       title=f"Teacher: {pgd_label} accuracy (%) per class after each epoch", xlabel="epoch",
                       fmt=".0f", vmin=0, vmax=100, annotate=small)
    ax.set_xticklabels(history["epoch"].astype(int).tolist(), rotation=0, ha="center")
    ferd.book.plots.save_figure(fig, "ch01_training_per_class", folder=FIG_DIR)
else:
    print("This history has no per-class accuracy per epoch (teacher.track_per_class = 0); no per-class curve.")
    fig, ax = plt.subplots(figsize=(6, 1.2))  # a note in place of the figure, which the text refers to
    ax.set_axis_off()
    ax.text(0.5, 0.5, "no per-class accuracy per epoch in this history\n(teacher.track_per_class = 0)",
            ha="center", va="center", transform=ax.transAxes, fontsize="small", color="grey")
glue("ch01_training_per_class_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} ch01_training_per_class_fig
# :name: fig-ch01-training-per-class
#
# The teacher's PGD accuracy (%) per class (rows) after each training epoch (columns), on the same
# class-balanced test images as {numref}`fig-ch01-training-curve`; darker cells are lower accuracy. When the
# training did not record per-class accuracy, the figure is a note saying so.
# ```

# %% [markdown]
# ## Per-class robustness
#
# We attack a fixed, class-balanced evaluation set with every attack of the profile: none (Clean), FGSM (one
# signed step of size $\epsilon$), PGD with {eq}`ch01-pgd-step`, the same ascent on the Carlini-Wagner margin
# loss (CW$_\infty$), and, at the `cpu` profile, AutoAttack (AA), an ensemble of four stronger attacks. For each
# attack let $a_c$ be the accuracy on the images whose true class is $c$. The paper summarises the $C$ values
# by their average, the worst class, and the normalised standard deviation (NSD, the spread relative to the
# mean, lower is fairer):
#
# $$
# \begin{gathered}
# \mathrm{Avg} = \frac{1}{C}\sum_{c=1}^{C} a_c, \qquad \mathrm{Worst} = \min_c a_c, \\
# \mathrm{NSD} = \frac{\sqrt{\frac{1}{C}\sum_c (a_c - \mathrm{Avg})^2}}{\mathrm{Avg}}.
# \end{gathered}
# $$ (ch01-metrics)
#
# `ferd.book.experiments.evaluate_teacher` runs the attacks (cached per attack) and returns one row per
# (attack, class).

# %%
per_class = experiments.evaluate_teacher(cfg, progress=False, use_shipped=not retrain_teacher)
per_class["attack_label"] = [ferd.book.plots.attack_label(n, cfg) for n in per_class["attack"]]
n_eval = per_class.groupby("attack", sort=False)["count"].sum()
eval_sizes = ", ".join(f"{ferd.book.plots.attack_label(k, cfg)} on {v:,}" for k, v in n_eval.items())
glue("ch01_n_eval", eval_sizes, display=False)
class_order = per_class.drop_duplicates("class_index").sort_values("class_index")["class_name"]
attack_order = [ferd.book.plots.attack_label(n, cfg) for n in cfg.attack.attacks]
(per_class.pivot(index="class_name", columns="attack_label", values="accuracy")
 .reindex(index=class_order, columns=attack_order).mul(100).round(1).rename_axis(index="class", columns=None))

# %% [markdown]
# {numref}`fig-ch01-teacher-per-class` shows the same numbers as a bar chart, one group per class (evaluation
# images, class-balanced: {glue:text}`ch01_n_eval`). The class with the lowest PGD accuracy is in bold.

# %%
pgd = per_class[per_class["attack"] == "pgd"].set_index("class_index")
worst_idx = int(pgd["accuracy"].idxmin())
fig = ferd.book.plots.per_class_bars(per_class, hue="attack_label", title="Teacher: per-class accuracy under attack",
                                highlight=worst_idx)
ferd.book.plots.save_figure(fig, "ch01_teacher_per_class", folder=FIG_DIR)
glue("ch01_teacher_per_class_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} ch01_teacher_per_class_fig
# :name: fig-ch01-teacher-per-class
#
# The teacher's accuracy (%) per class on the evaluation set, one bar per attack (clean included); the class
# with the lowest PGD accuracy is labelled in bold.
# ```

# %% [markdown]
# The summary {eq}`ch01-metrics` per attack; each cell reads "ours (paper)". The paper reports no teacher
# row, so its values read n/r ("not recovered") throughout; its teachers are CIFAR networks in any case.

# %%
summ = experiments.summary(per_class.drop(columns="attack_label"), cfg)
table = ferd.book.tables.side_by_side(summ, None, rows="attack", cols=None, metrics=("avg", "worst", "nsd"),
                                 labels={a: ferd.book.plots.attack_label(a, cfg) for a in summ["attack"]})
ferd.book.tables.save_results(summ, "ch01_teacher_summary", profile)
caption = ferd.book.tables.provenance_caption(profile, cfg.dataset, cfg.seed, cfg.key("teacher"))
print(f"Teacher {cfg.teacher.arch} ({cfg.teacher.method}); evaluation images: {eval_sizes}.")
print(caption)
table

# %% [markdown]
# Which class is the weakest? The specification expects Shirt, which is easily confused with T-shirt/top,
# Pullover and Coat, to be the worst class under every attack. The cell below finds the worst class per attack
# and checks the expectation.

# %%
rows = []
for name, g in per_class.groupby("attack", sort=False):
    lowest = g["accuracy"].min()
    worst_names = g.loc[g["accuracy"] == lowest, "class_name"].tolist()
    digits = ferd.book.tables.resolution_digits(g["count"].min())  # a class's step is 100 / its images
    rows.append({"attack": ferd.book.plots.attack_label(name, cfg), "worst class(es)": ", ".join(worst_names),
                 "accuracy (%)": ferd.book.tables.fmt_pct(lowest, digits),
                 "images per class": int(g["count"].min()),
                 f"{expected_worst} is worst": expected_worst in worst_names})
worst_table = pd.DataFrame(rows)

pgd_lowest = pgd["accuracy"].min()
pgd_worst = pgd.loc[pgd["accuracy"] == pgd_lowest, "class_name"].tolist()
expected_acc = float(pgd.loc[pgd["class_name"] == expected_worst, "accuracy"].iloc[0])
if pgd_worst == [expected_worst]:
    verdict = f"As the specification expects, {expected_worst} is the worst class under PGD."
elif expected_worst in pgd_worst:
    others = ", ".join(c for c in pgd_worst if c != expected_worst)
    verdict = (f"{expected_worst} shares the lowest PGD accuracy with {others}, so the expectation that it is "
               f"the single worst class holds only partly.")
else:
    verdict = (f"Contrary to the specification's expectation, {expected_worst} is not the worst class under PGD "
               f"(it scores {100 * expected_acc:.1f}%); the worst is {', '.join(pgd_worst)}.")
n_attacks_ok = int(worst_table[f"{expected_worst} is worst"].sum())
glue("ch01_worst_class", pgd_worst[0], display=False)
glue("ch01_worst_pgd", f"{100 * pgd_lowest:.1f}", display=False)
glue("ch01_verdict", verdict, display=False)
glue("ch01_expected_count", f"{expected_worst} is among the worst classes under {n_attacks_ok} of "
     f"{len(worst_table)} attacks", display=False)
glue("ch01_pgd_avg", f"{100 * float(summ.loc[summ['attack'] == 'pgd', 'avg'].iloc[0]):.2f}", display=False)
glue("ch01_pgd_nsd", f"{float(summ.loc[summ['attack'] == 'pgd', 'nsd'].iloc[0]):.3f}", display=False)
print(verdict)

# the findings table (landing page): two claims this book adds about the teacher, from this measurement
worst_row = pgd.loc[pgd["accuracy"].idxmin()]
pgd_avg = float(summ.loc[summ["attack"] == "pgd", "avg"].iloc[0])
uneven = scipy.stats.binomtest(int(worst_row["correct"]), int(worst_row["count"]), pgd_avg, alternative="less")
n_class = int(pgd["count"].min())
save_claims([
    Claim(claim=f"The robust teacher is itself unfair: its weakest class under "
                f"{ferd.book.plots.attack_label('pgd', cfg)} lies below its average", chapter="01_teacher",
          ours=f"{worst_row['class_name']} {100 * worst_row['accuracy']:.1f} % against an average of "
               f"{100 * pgd_avg:.2f} % (one-sided binomial p = {uneven.pvalue:.1e})",
          verdict="supported" if uneven.pvalue < 0.05 else "inconclusive",
          test="one-sided binomial test of the weakest class against the average, 5 %",
          resolution=f"{100 / n_class:.2g} points ({n_class} images per class)", origin="book"),
    Claim(claim=f"The teacher's weakest class under attack is {expected_worst}, as the specification expects",
          chapter="01_teacher", ours=f"weakest under PGD: {', '.join(pgd_worst)} ({100 * pgd_lowest:.1f} %)",
          verdict=("supported" if pgd_worst == [expected_worst] else
                   "inconclusive" if expected_worst in pgd_worst else "not supported"),
          test="direct measurement on the evaluation set", resolution=f"{100 / n_class:.2g} points", origin="book"),
], "01_teacher", profile)
worst_table

# %% [markdown]
# The worst class under PGD is **{glue:text}`ch01_worst_class`**, at {glue:text}`ch01_worst_pgd`% PGD accuracy
# against an average of {glue:text}`ch01_pgd_avg`% (NSD {glue:text}`ch01_pgd_nsd`).
# {glue:text}`ch01_verdict` {glue:text}`ch01_expected_count`.
#
# ## Preconditions
#
# Is this a teacher worth distilling from? The cell below checks the three bars of the section "Why this
# teacher" on the evaluation table above: the clean Avg, the clean accuracy of every class, and the worst class
# under PGD.

# %%
clean = per_class[per_class["attack"] == "clean"]
measured = {"clean_avg": float(clean["accuracy"].mean()), "clean_class": float(clean["accuracy"].min()),
            "pgd_worst": float(pgd_lowest)}
weakest_clean = clean.loc[clean["accuracy"].idxmin(), "class_name"]
checks = {"clean_avg": "clean accuracy, Avg over classes",
          "clean_class": f"clean accuracy, every class (lowest: {weakest_clean})",
          "pgd_worst": f"{pgd_label} accuracy, worst class ({pgd_worst[0]})"}
precond = pd.DataFrame([{"check": checks[k], "required (%)": f">= {100 * REQUIRED[k]:.0f}",
                         "measured (%)": f"{100 * measured[k]:.2f}" if k == "clean_avg" else f"{100 * measured[k]:.1f}",
                         "met": "yes" if measured[k] >= REQUIRED[k] else "no"} for k in REQUIRED])
failed = precond.loc[precond["met"] == "no", "check"].tolist()
if not failed:
    precond_sentence = "The teacher meets all three preconditions."
else:
    precond_sentence = (f"The teacher does not meet the preconditions: {len(failed)} of {len(precond)} are not met "
                        f"({'; '.join(failed)}).")
    if cfg.profile == "smoke":
        precond_sentence += " At the smoke profile this is expected: its teacher trains for seconds."
    elif cfg.profile != "cpu":
        precond_sentence += " The bars were set for the cpu profile's Fashion-MNIST teacher."
glue("ch01_preconditions", precond_sentence, display=False)
print(precond_sentence)
precond

# %% [markdown]
# {glue:text}`ch01_preconditions`
#
# Whatever the verdict, the unevenness is inherited: a student that imitates this teacher starts from the same
# per-class profile, and the next chapter asks whether plain data-free distillation makes it worse.
#
# ## Exercises
#
# 1. Train the teacher with the other method (`make_config(profile, preset, overrides={"teacher.method":
#    "pgd_at"})` when the profile uses TRADES, `"trades"` otherwise) and compare the per-class PGD profile and
#    NSD with this teacher's. Which method keeps the worst class higher?
# 2. The robustness-accuracy trade-off is not uniform over classes. Using `per_class`, plot for each class the
#    drop from Clean to PGD accuracy. Which classes lose the most, and are they the visually similar ones?
# 3. Evaluate the teacher at budgets $\epsilon \in \{0.05, 0.1, 0.15\}$ (override `attack.eps`; the teacher is
#    retrained because the budget is part of its recipe, so keep `profile="smoke"` for a quick look). How does
#    the worst class change?
# 4. NSD in {eq}`ch01-metrics` uses the population standard deviation. Recompute it with the sample standard
#    deviation (`ferd.toolkit.metrics.nsd(acc, std="sample")`): does the ranking of the attacks by NSD change?
