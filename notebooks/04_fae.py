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
# # 4. Fairness-aware examples
#
# A robust network's internal features are a mix: some channels carry *robust* information that a small
# perturbation cannot change, others carry *non-robust* information that an attacker can flip easily. The
# non-robust part is what adversarial examples exploit, and predictions made from it tend to agree with the
# predictions on adversarial examples. FERD's second idea shapes the synthetic images so that the teacher's
# non-robust features point to **no class in particular**: the teacher's prediction from those features alone
# should be uniform. The paper calls the resulting synthetic images *fairness-aware examples* (FAEs). **How does
# FERD find the non-robust channels, does the extra generator term actually flatten the non-robust
# prediction, does it keep doing something over a whole run without spoiling the synthetic classes, and what do
# the synthetic images look like with and without it?**

# %% [markdown]
# ```{admonition} Open this chapter as a notebook
# :class: tip
# This page is `notebooks/04_fae.py` executed. To run it yourself, open it in Jupyter as a notebook
# (`jupytext --to ipynb notebooks/04_fae.py`), or re-run it with other parameters (the cell tagged `parameters`
# lists them): `ferd book --only 04`, or
# `jupytext --to ipynb notebooks/04_fae.py -o - | papermill - out.ipynb -p profile smoke` ({doc}`../reproduce`).
# ```

# %% [markdown]
# The parameters of the chapter.

# %% tags=["parameters"]
profile = "cpu"  # "smoke" (tiny, numbers meaningless), "cpu" (the book) or "paper" (GPU, CIFAR)
seed = 0  # seed of the demonstration batch and of the runs
device = "cpu"  # "cpu", "cuda" or "auto"
student = "fmnist-resnet"  # student architecture
preset = "ferd"  # with FAE
compare_preset = "ferd_no_fae"  # the same without the uniformity term
demo_steps = 0  # generator steps in the demonstration, with and without L_uni; 0 means one round (N_G)
grid_per_class = 8  # synthetic images shown per class in the sample grids
tsne_points = 600  # most recent pool samples embedded per run (t-SNE cost grows with it)

# %% [markdown]
# The next cell imports the library and builds the two configurations; a bad parameter fails here.

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from myst_nb import glue
from sklearn.metrics import silhouette_score

import ferd.book.health
import ferd.book.plots
import ferd.book.runner
import ferd.book.tables
from ferd.book import experiments
from ferd.config import make_config
from ferd.method.fae import ib_fit, robust_mask, spatial_variance, uniformity_loss
from ferd.method.generator import Generator, reinit_generator
from ferd.method.losses import BNStatsLoss
from ferd.method.methods import run_key
from ferd.method.synthesis import ferd_objective, frozen, generation_round, sample_labels
from ferd.toolkit.augment import augment
from ferd.toolkit.data import DATASETS
from ferd.toolkit.models import create_model
from ferd.toolkit.runtime import make_generator, seed_everything

ferd.book.plots.set_style()
FIG_DIR = ferd.book.runner.output_dir("figures", profile)
# AutoAttack belongs to chapter 6 (minutes per model on a CPU): this chapter's tables use the other attacks
no_aa = [x for x in make_config(profile, "ferd").attack.attacks if x != "aa"]
cfg = make_config(profile, preset, overrides=dict(student=student, seed=seed, device=device, **{"attack.attacks": no_aa}))
cfg_cmp = make_config(profile, compare_preset, overrides=dict(student=student, seed=seed, device=device,
                                                              **{"attack.attacks": no_aa}))
d = cfg.distill
info = DATASETS[cfg.dataset]
C = info.num_classes
n_demo = demo_steps or d.n_g
print(f"IB fit: {d.ib_steps} Adam steps, lr {d.ib_lr}, beta {d.ib_beta}, noise {d.ib_noise}; "
      f"generator batch {d.batch_size}; runs {run_key(cfg)} ({preset}), {run_key(cfg_cmp)} ({compare_preset})")

# %% [markdown]
# ## Finding the non-robust channels
#
# Split the teacher at an intermediate layer: $Z = f^T_{\le l}(x) \in \mathbb{R}^{B\times K\times H\times W}$
# are its features ($K$ channels of $H\times W$ maps) and $f^T_{>l}$ the rest of the network, the *head*. For
# the Fashion-MNIST teacher, $Z$ is the output of the third convolution's BatchNorm: {glue:text}`ch04_K`
# channels of $7\times7$ maps.
# Following the information-bottleneck view of robust features (Kim, Lee and Ro, 2021), FERD asks how much
# noise each channel of each sample tolerates before the head stops predicting the label $y$. It learns one
# noise scale $s_{bk} = \mathrm{softplus}(\Lambda_{bk})$ per sample $b$ and channel $k$ by minimising
#
# $$
# \begin{aligned}
# \mathcal{L}_{IB}(\Lambda) = {} & \frac{1}{B}\sum_b \mathrm{CE}\Big(f^T_{>l}\big(\bar Z_b + s_b \odot \xi_b\big), y_b\Big) \\
#   & + \beta\,\frac{1}{BK}\sum_{b,k}\frac12\Big(\frac{v_{bk}}{s_{bk}^2} + \log\frac{s_{bk}^2}{v_{bk}} - 1\Big),
#   \qquad \xi \sim \mathcal{N}(0, 1),
# \end{aligned}
# $$ (ch04-ib)
#
# where $\bar Z$ is $Z$ without gradient and $v_{bk}$ the variance of channel $k$'s map over its $H\cdot W$
# positions. The cross-entropy wants little noise, the KL term pulls each $s_{bk}^2$ towards $v_{bk}$. A channel
# whose fitted noise variance ends up *above the largest spatial variance in the batch* can be drowned in noise
# without hurting the prediction, so the head does not rely on its details: it counts as **robust**. All other
# channels are **non-robust**:
#
# $$
# M_{bk} = \mathbb{1}\Big[s_{bk}^2 > \max_{b',k'} v_{b'k'}\Big], \qquad Z_{nr} = Z \odot (1 - M).
# $$ (ch04-mask)
#
# We run this on one batch of a freshly initialised generator, as in the first step of a generation round:
# labels drawn uniformly, a new generator $G$ and latent codes $z$, images $x = G(z)$, augmented, then
# `ferd.method.fae.ib_fit` and `ferd.method.fae.robust_mask`.

# %%
seed_everything(seed)
teacher = experiments.teacher(cfg, progress=False)
G = Generator(nz=d.nz, img_size=info.shape[1], nc=info.shape[0], ngf=d.ngf)
reinit_generator(G, generator=make_generator(seed))
y = sample_labels(torch.full((C,), 1.0 / C), d.batch_size)
z0 = torch.randn(d.batch_size, d.nz, generator=make_generator(seed + 1))
G.train()
teacher.eval()
with torch.no_grad():
    xh = augment(G(z0), padding=d.aug_padding, generator=make_generator(seed + 2))
    Z = teacher.features(xh)
s_star = ib_fit(teacher.head, Z, y, steps=d.ib_steps, lr=d.ib_lr, beta=d.ib_beta, noise=d.ib_noise,
                generator=make_generator(seed + 3))
M = robust_mask(s_star, Z)
v = spatial_variance(Z)
nonrobust = float(1 - M.mean())
glue("ch04_nonrobust_fraction", f"{100 * nonrobust:.1f}", display=False)
if nonrobust == 1.0:
    mask_note = ("Here every pair is non-robust, so Z_nr equals Z and the uniformity term below asks the teacher's whole "
                 "prediction to be uniform, in direct opposition to the class term of the generator.")
elif nonrobust == 0.0:
    mask_note = ("Here every pair is robust, so Z_nr is zero: the uniformity term below sees only the head's bias and "
                 "cannot move the images.")
else:
    mask_note = "Both kinds occur, so the uniformity term below acts on part of the representation only."
glue("ch04_mask_note", mask_note, display=False)
glue("ch04_K", str(Z.shape[1]), display=False)
glue("ch04_B", str(Z.shape[0]), display=False)
print(f"Z {tuple(Z.shape)}; threshold max v = {float(v.max()):.4f}; non-robust channels {100 * nonrobust:.1f}%")

# %% [markdown]
# Each point in {numref}`fig-ch04-ib-scatter` is one (sample, channel) pair: its spatial variance $v_{bk}$
# against its fitted noise variance $s_{bk}^2$. The dashed line is the threshold of {eq}`ch04-mask`: points above
# it are robust.

# %%
vv = v.flatten().numpy()
ss = s_star.flatten().square().numpy()
rob = M.flatten().numpy() > 0
thr = float(v.max())
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.scatter(np.maximum(vv[~rob], 1e-8), ss[~rob], s=6, alpha=0.5, label="non-robust", color="C1")
ax.scatter(np.maximum(vv[rob], 1e-8), ss[rob], s=6, alpha=0.5, label="robust", color="C0")
ax.axhline(thr, color="black", ls="--", lw=1, label=f"threshold max v = {thr:.3g}")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("spatial variance v_bk of the channel map")
ax.set_ylabel("fitted noise variance s*_bk^2")
ax.set_title("Information-bottleneck fit on one generator batch")
ax.legend(fontsize="small")
ferd.book.plots.save_figure(fig, "ch04_ib_scatter", folder=FIG_DIR)
glue("ch04_ib_scatter_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} ch04_ib_scatter_fig
# :name: fig-ch04-ib-scatter
#
# The information-bottleneck fit on one generator batch: for each (sample, channel) pair, the spatial variance
# $v_{bk}$ of its feature map (horizontal) against its fitted noise variance $s_{bk}^2$ (vertical), both on log
# scales; robust pairs in blue, non-robust pairs in orange. The dashed line is the threshold $\max v$ of
# {eq}`ch04-mask`.
# ```

# %% [markdown]
# In this batch {glue:text}`ch04_nonrobust_fraction`% of the {glue:text}`ch04_B` x {glue:text}`ch04_K`
# (sample, channel) pairs are non-robust. Because one threshold serves the whole batch, a channel is robust only
# when its tolerated noise exceeds the *largest* spatial variance anywhere in the batch: a strict test.
# {glue:text}`ch04_mask_note`
#
# ## The uniformity term
#
# FERD adds one term to the generator's objective (chapter 2, {eq}`ch02-generator`): the teacher's prediction
# from the non-robust channels alone should be uniform over the $C$ classes,
#
# $$
# \mathcal{L}_{uni} = \frac{1}{B}\sum_b \mathrm{KL}\Big(U \,\Big\|\, q\big(f^T_{>l}(Z_{nr,b})\big)\Big),
# \qquad U = \big(\tfrac1C, \dots, \tfrac1C\big),
# $$ (ch04-uni)
#
# weighted by $\lambda_{uni} = 5$. The mask is a constant, but $Z_{nr}$ depends on the generator, so the term
# moves the images. To see it act we run {glue:text}`ch04_demo_steps` generator steps of the full FERD objective
# twice from the same start, once with and once without {eq}`ch04-uni`, and measure $\mathcal{L}_{uni}$ (with a
# fresh mask) at every step.

# %%
def generator_steps(with_uni: bool) -> tuple[list[float], torch.Tensor, torch.Tensor]:
    """`n_demo` steps of FERD's generation round (the library's `generation_round` with `ferd_objective`) from the
    demo start; returns L_uni per step (measured with a fresh mask, also without the term) and the Z_nr logits
    before and after."""
    seed_everything(seed)
    net_s = create_model(cfg.student, num_classes=C).eval()  # a fresh student, as in the first epoch
    gen = Generator(nz=d.nz, img_size=info.shape[1], nc=info.shape[0], ngf=d.ngf)  # the profile's width (M5)
    reinit_generator(gen, generator=make_generator(seed))
    z = z0.clone().requires_grad_(True)
    bn = BNStatsLoss(teacher)
    objective = ferd_objective(teacher, net_s, bn, weights=tuple(d.gen_loss_weights), use_fae=with_uni,
                               ib_steps=d.ib_steps, ib_lr=d.ib_lr, ib_beta=d.ib_beta, ib_noise=d.ib_noise,
                               ikl_T2=d.ikl_T2)
    curve, logits = [], []

    def measure(xh: torch.Tensor) -> None:  # L_uni and the non-robust prediction, outside the training graph
        Zs = teacher.features(xh.detach()).detach()
        Ms = robust_mask(ib_fit(teacher.head, Zs, y, steps=d.ib_steps, lr=d.ib_lr, beta=d.ib_beta,
                                noise=d.ib_noise), Zs)
        with torch.no_grad():
            curve.append(float(uniformity_loss(teacher.head, Zs, Ms)))
            logits.append(teacher.head(Zs * (1 - Ms)))

    def measured_objective(xh: torch.Tensor, labels: torch.Tensor):
        measure(xh)
        return objective(xh, labels)

    generation_round(gen, z, y, measured_objective, steps=n_demo, lr_g=d.lr_g, lr_z=d.lr_z, padding=d.aug_padding,
                     frozen_nets=(teacher, net_s), flip=d.aug_flip)
    with frozen(teacher, net_s):
        measure(augment(gen(z), padding=d.aug_padding, flip=d.aug_flip))  # after the last update
    bn.remove()
    return curve, logits[0], logits[-1]


curve_with, first_with, last_with = generator_steps(True)
curve_without, _, last_without = generator_steps(False)
glue("ch04_demo_steps", str(n_demo), display=False)

# %% [markdown]
# {numref}`fig-ch04-uniformity-steps`, left: $\mathcal{L}_{uni}$ over the steps. Right: the teacher's prediction
# from the non-robust features, averaged over the batch, per class: before the steps and after them, with and
# without the term.

# %%
def mean_prob_of_label(logits: torch.Tensor) -> float:
    """Mean probability that the non-robust prediction gives to each sample's generation label."""
    return float(F.softmax(logits, 1).gather(1, y[:, None]).mean())


fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
axes[0].plot(range(len(curve_with)), curve_with, marker="o", ms=3, label="with L_uni (FERD)")
axes[0].plot(range(len(curve_without)), curve_without, marker="s", ms=3, label="without L_uni")
axes[0].set_xlabel("generator step")
axes[0].set_ylabel("KL(U || q(head(Z_nr)))")
axes[0].set_title("Distance of the non-robust prediction from uniform")
axes[0].legend(fontsize="small")
probs = {"before": F.softmax(first_with, 1).mean(0), "after, with L_uni": F.softmax(last_with, 1).mean(0),
         "after, without L_uni": F.softmax(last_without, 1).mean(0)}
ferd.book.plots.grouped_bars(axes[1], pd.DataFrame({k: p.numpy() for k, p in probs.items()},
                                              index=experiments.eval_split(cfg).classes),
                        "mean probability", percent=False, reference=(1 / C, "uniform 1/C"),
                        title="Teacher's prediction from Z_nr (batch mean)")
axes[1].legend(fontsize="small")
fig.tight_layout()
ferd.book.plots.save_figure(fig, "ch04_uniformity_steps", folder=FIG_DIR)
glue("ch04_uniformity_steps_fig", fig, display=False)
plt.close(fig)
falls = curve_with[-1] < curve_with[0]
glue("ch04_uni_first", f"{curve_with[0]:.3f}", display=False)
glue("ch04_uni_last_with", f"{curve_with[-1]:.3f}", display=False)
glue("ch04_uni_last_without", f"{curve_without[-1]:.3f}", display=False)
glue("ch04_uni_verdict",
     ("falls" if falls else "does not fall") + (", and ends below the run without the term"
                                                if curve_with[-1] < curve_without[-1] else
                                                ", and does not end below the run without the term"),
     display=False)
glue("ch04_label_prob", f"{mean_prob_of_label(last_with):.3f} with the term and "
     f"{mean_prob_of_label(last_without):.3f} without", display=False)
pd.DataFrame({"step": range(len(curve_with)), "L_uni with": np.round(curve_with, 4),
              "L_uni without": np.round(curve_without, 4)}).iloc[[0, len(curve_with) // 2, -1]]

# %% [markdown]
# ```{glue:figure} ch04_uniformity_steps_fig
# :name: fig-ch04-uniformity-steps
#
# {glue:text}`ch04_demo_steps` generator steps of the FERD objective from the same start, with and without the
# uniformity term. Left: $\mathcal{L}_{uni}$ {eq}`ch04-uni`, measured with a fresh mask, at each step. Right: the
# teacher's prediction from the non-robust features $Z_{nr}$, averaged over the batch, per class: before the
# steps, and after them with and without the term; the dashed line is the uniform probability $1/C$.
# ```
#
# With the term, $\mathcal{L}_{uni}$ {glue:text}`ch04_uni_verdict` (from {glue:text}`ch04_uni_first` to
# {glue:text}`ch04_uni_last_with`, against {glue:text}`ch04_uni_last_without` without it). After the steps, the
# non-robust prediction gives each image's own label a mean probability of {glue:text}`ch04_label_prob`
# (uniform would be $1/C$).

# %% [markdown]
# ## Does FAE do something?
#
# The demonstration is one batch. Over a whole run two things can go wrong, and either makes "FERD with FAE" a
# different method from the paper's (chapter 2's health check). The mask can be *degenerate*: if it calls every
# (sample, channel) pair robust, $Z_{nr}$ is zero and $\mathcal{L}_{uni}$ cannot move the images; if it calls
# every pair non-robust, $\mathcal{L}_{uni}$ asks for a uniform prediction from the teacher's whole
# representation, in direct opposition to the class term (the first `cpu` profile did exactly this until M2 in
# {doc}`../differences`). And even with a sound mask, the uniformity term could pull the images away from their
# classes, so that the teacher stops recognising the class an image was generated for. The library logs both
# every epoch: `nonrobust`, the mask's non-robust fraction at the generator step whose batch joined the pool,
# and `agree_pool` / `agree_pool_worst`, how often the teacher predicts the sampled label on the pool so far
# (overall and for the worst class). We train `ferd` and `ferd_no_fae` (identical apart from the uniformity
# term; both cached) and read their histories.

# %%
experiments.prefetch([cfg, cfg_cmp], progress=False)  # both runs side by side (one core each); cached after
ferd.book.health.record_health([cfg, cfg_cmp], "04_fae", profile)
hists = {preset: experiments.distill(cfg, progress=False).history,
         compare_preset: experiments.distill(cfg_cmp, progress=False).history}
h_fae = hists[preset]
nr = h_fae["nonrobust"].astype(float)
fig = ferd.book.plots.epoch_lines({f"{preset}: non-robust fraction": (h_fae["epoch"], nr)}, percent=True,
                             ylim=(-0.03, 1.03), bars=[(1.0, "all non-robust (degenerate)"),
                                                       (0.0, "all robust (degenerate)")],
                             ylabel="non-robust pairs (%)",
                             title="The FAE mask at the kept generator step, per epoch")
ferd.book.plots.save_figure(fig, "ch04_nonrobust_over_epochs", folder=FIG_DIR)
glue("ch04_nonrobust_over_epochs_fig", fig, display=False)
plt.close(fig)
curves, styles = {}, {}
for i, (name, h) in enumerate(hists.items()):
    curves[f"{name}: whole pool"] = (h["epoch"], h["agree_pool"])
    curves[f"{name}: worst class"] = (h["epoch"], h["agree_pool_worst"])
    styles[f"{name}: worst class"] = {"color": f"C{i}", "ls": "--", "marker": "s"}
    styles[f"{name}: whole pool"] = {"color": f"C{i}"}
fig = ferd.book.plots.epoch_lines(curves, styles=styles, percent=True, ylim=(0, 1.02), ylabel="teacher agrees (%)",
                             bars=[(ferd.book.health.MIN_AGREEMENT, "health bar: whole pool"),
                                   (ferd.book.health.MIN_CLASS_AGREEMENT, "health bar: worst class")],
                             title="Does the uniformity term cost class agreement?")
ferd.book.plots.save_figure(fig, "ch04_fae_agreement", folder=FIG_DIR)
glue("ch04_fae_agreement_fig", fig, display=False)
plt.close(fig)

lo, hi = ferd.book.health.NONROBUST_BOUNDS  # the ends that chapter 2's health check rules out
degenerate = float(((nr <= lo) | (nr >= hi)).mean())
nr_mean = float(nr.mean())
if lo < nr_mean < hi and degenerate == 0:
    nr_verdict = "the mask splits the channels in every epoch, so the uniformity term acts on part of the features"
elif lo < nr_mean < hi:
    nr_verdict = (f"on average the mask splits the channels, but in {100 * degenerate:.0f}% of the epochs it sits at "
                  "a degenerate end")
elif nr_mean >= 0.99:
    nr_verdict = ("the mask is degenerate: (nearly) every pair is non-robust, so the uniformity term fights the "
                  "class term instead of shaping the non-robust features")
else:
    nr_verdict = "the mask is degenerate: (nearly) every pair is robust, so the uniformity term does nothing"
last = {k: h.iloc[-1] for k, h in hists.items()}
d_pool = 100 * (last[preset]["agree_pool"] - last[compare_preset]["agree_pool"])
d_worst = 100 * (last[preset]["agree_pool_worst"] - last[compare_preset]["agree_pool_worst"])
healthy = (last[preset]["agree_pool"] >= ferd.book.health.MIN_AGREEMENT
           and last[preset]["agree_pool_worst"] >= ferd.book.health.MIN_CLASS_AGREEMENT)
agree_verdict = (f"with FAE, agreement on the whole pool differs by {d_pool:+.1f} points and on the worst class by "
                 f"{d_worst:+.1f} points from the run without it; "
                 + ("FERD's pool still meets both health bars." if healthy else
                    "FERD's pool misses at least one of the health bars, so its synthetic classes are not reliable."))
glue("ch04_nonrobust_mean", f"{100 * nr_mean:.1f}", display=False)
glue("ch04_nonrobust_span", f"{100 * nr.min():.1f}% to {100 * nr.max():.1f}%", display=False)
glue("ch04_nonrobust_verdict", nr_verdict, display=False)
for key, name in (("with", preset), ("without", compare_preset)):
    glue(f"ch04_agree_pool_{key}", f"{100 * last[name]['agree_pool']:.1f}", display=False)
    glue(f"ch04_agree_worst_{key}", f"{100 * last[name]['agree_pool_worst']:.1f}", display=False)
glue("ch04_agree_verdict", agree_verdict, display=False)
fae_health = pd.DataFrame([{
    "run": ferd.book.plots.preset_label(name),
    "non-robust, mean over epochs (%)": 100 * float(h["nonrobust"].astype(float).mean()),
    "pool agreement, last epoch (%)": 100 * float(h["agree_pool"].iloc[-1]),
    "worst-class agreement, last epoch (%)": 100 * float(h["agree_pool_worst"].iloc[-1]),
    "pool agreement, mean over epochs (%)": 100 * float(h["agree_pool"].mean()),
    "worst-class agreement, mean over epochs (%)": 100 * float(h["agree_pool_worst"].mean()),
} for name, h in hists.items()]).set_index("run")
ferd.book.tables.save_results(fae_health.reset_index(), "ch04_fae_health", profile)
fae_health.round(1)

# %% [markdown]
# ```{glue:figure} ch04_nonrobust_over_epochs_fig
# :name: fig-ch04-nonrobust-over-epochs
#
# The share (%) of (sample, channel) pairs that FERD's mask calls non-robust, at the generator step whose batch
# joined the pool, per epoch. The dotted lines mark the two degenerate ends: every pair non-robust (100 %) and
# every pair robust (0 %).
# ```
#
# ```{glue:figure} ch04_fae_agreement_fig
# :name: fig-ch04-fae-agreement
#
# The share (%) of the synthetic pool whose sampled label the teacher predicts, after each epoch, for FERD with
# and without the uniformity term (one colour each): over the whole pool (solid) and in the worst class (dashed).
# The dotted lines are chapter 2's health bars.
# ```
#
# Over the run, the mask calls on average {glue:text}`ch04_nonrobust_mean`% of the (sample, channel) pairs
# non-robust (from {glue:text}`ch04_nonrobust_span` across epochs, {numref}`fig-ch04-nonrobust-over-epochs`):
# {glue:text}`ch04_nonrobust_verdict` (`ferd_no_fae` fits no mask, hence the dash in the table). At the last epoch
# ({numref}`fig-ch04-fae-agreement`) the teacher recognises
# {glue:text}`ch04_agree_pool_with`% of FERD's pool (worst class {glue:text}`ch04_agree_worst_with`%), against
# {glue:text}`ch04_agree_pool_without`% (worst class {glue:text}`ch04_agree_worst_without`%) without the
# uniformity term: {glue:text}`ch04_agree_verdict` Both runs use one seed, so the difference describes these
# two runs only.

# %% [markdown]
# ## What the synthetic images look like
#
# Over a whole run the generator {glue:text}`ch04_generator_reset`, and each epoch's best batch joins the pool.
# We read the pools of the two runs from their last checkpoints: for each class, the most recent images
# generated for it ({numref}`fig-ch04-sample-grids`).

# %%
def run_pool(c) -> tuple[torch.Tensor, torch.Tensor]:
    """The synthetic pool (images, sampled labels) of a finished run."""
    return experiments.distill(c, progress=False).pool()


pools = {preset: run_pool(cfg), compare_preset: run_pool(cfg_cmp)}
glue("ch04_generator_reset", "is re-initialised every epoch" if d.generator_reset == "every_round" else
     "is initialised once and kept across epochs", display=False)
classes = experiments.eval_split(cfg).classes
fig, axes = plt.subplots(1, 2, figsize=(2 + 1.1 * grid_per_class, 0.5 + 0.55 * C))
for ax, (name, (px, py)) in zip(axes, pools.items()):
    rows = []
    for c in range(C):
        mine = px[py == c][-grid_per_class:]
        pad = torch.ones(grid_per_class - len(mine), *px.shape[1:])  # a class with few samples: blank cells
        rows.append(torch.cat([mine, pad]))
    grid = ferd.book.plots.image_grid(torch.cat(rows), nrow=grid_per_class)
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1)
    step = grid.shape[0] / C
    ax.set_yticks([step * (c + 0.5) for c in range(C)])
    ax.set_yticklabels(classes, fontsize=8)
    ax.set_xticks([])
    ax.grid(False)
    ax.set_title(f"{name} ({len(px)} pool images)")
fig.tight_layout()
ferd.book.plots.save_figure(fig, "ch04_sample_grids", folder=FIG_DIR)
glue("ch04_sample_grids_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} ch04_sample_grids_fig
# :name: fig-ch04-sample-grids
#
# Synthetic images from the final pools of FERD (left) and FERD without the uniformity term (right): one row per
# class, holding the most recent images generated for it; blank cells mean the class has fewer images in the
# pool.
# ```

# %% [markdown]
# ## How the teacher sees the synthetic samples
#
# The released code visualises synthetic data by a t-SNE of the teacher's split-layer features, averaged over
# the spatial positions ($\mathrm{GAP}(Z) \in \mathbb{R}^{K}$), coloured by the teacher's predicted class. We
# embed the {glue:text}`ch04_tsne_n` most recent samples of each pool (perplexity $\min(30, n-1)$, 1,000
# iterations, random state `seed`). As numbers we report how often the teacher predicts the label an image was
# generated for, and the silhouette of the teacher's classes in feature space (higher: better separated).
# {numref}`fig-ch04-tsne` shows the two embeddings.

# %%
rows, embeds = [], {}
for name, (px, py) in pools.items():
    xs, ys = px[-tsne_points:], py[-tsne_points:]
    with torch.no_grad():
        feats = F.adaptive_avg_pool2d(teacher.features(xs), 1).flatten(1)
        pred = teacher.head(teacher.features(xs)).argmax(1)
    embeds[name] = (ferd.book.plots.tsne_embedding(feats, perplexity=30, max_iter=1000, random_state=seed), pred)
    n_pred = len(torch.unique(pred))
    sil = float(silhouette_score(feats.numpy(), pred.numpy())) if 1 < n_pred < len(pred) else float("nan")
    rows.append({"run": name, "samples": len(xs), "teacher agrees with label (%)": 100 * float((pred == ys).float().mean()),
                 "classes predicted": n_pred, "silhouette (teacher classes)": sil})
fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
for ax, (name, (emb, pred)) in zip(axes, embeds.items()):
    ferd.book.plots.class_scatter(emb, pred, classes, ax=ax, title=f"{name}: t-SNE of GAP(Z)", legend=ax is axes[-1])
fig.tight_layout()
ferd.book.plots.save_figure(fig, "ch04_tsne", folder=FIG_DIR)
glue("ch04_tsne_fig", fig, display=False)
plt.close(fig)
stats = pd.DataFrame(rows)
ferd.book.tables.save_results(stats, "ch04_synthetic_stats", profile)
glue("ch04_tsne_n", str(min(tsne_points, min(len(p[0]) for p in pools.values()))), display=False)
s_with, s_without = stats.set_index("run").loc[[preset, compare_preset], "silhouette (teacher classes)"]
glue("ch04_silhouette_verdict",
     "cannot be compared (too few predicted classes)" if np.isnan(s_with) or np.isnan(s_without) else
     (f"is higher with FAE ({s_with:.3f} against {s_without:.3f})" if s_with > s_without else
      f"is not higher with FAE ({s_with:.3f} against {s_without:.3f})"), display=False)
stats.assign(run=stats["run"].map(ferd.book.plots.preset_label)).round(
    {"teacher agrees with label (%)": 1, "silhouette (teacher classes)": 3}).set_index("run")

# %% [markdown]
# ```{glue:figure} ch04_tsne_fig
# :name: fig-ch04-tsne
#
# t-SNE of the teacher's spatially averaged split-layer features $\mathrm{GAP}(Z)$ of the
# {glue:text}`ch04_tsne_n` most recent pool images of FERD (left) and FERD without the uniformity term (right);
# each point is one image, coloured by the class the teacher predicts for it.
# ```
#
# The silhouette of the teacher's classes {glue:text}`ch04_silhouette_verdict`. The paper describes FAEs as
# giving representations that are balanced across classes; a t-SNE of one seed is a picture, not a test.
# Chapter 7 measures what FAEs do to the student's robustness, over paired seeds ({doc}`07_ablations`).
#
# ## Exercises
#
# 1. The threshold of {eq}`ch04-mask` is the *largest* spatial variance in the batch. Replace it by the median
#    of $v$ and recompute the non-robust fraction on the demonstration batch. What would that do to
#    $\mathcal{L}_{uni}$?
# 2. Rerun the IB fit with `noise="per_element"` (one noise value per pixel instead of per channel). How does
#    the scatter change?
# 3. Vary the IB weight $\beta$ in {eq}`ch04-ib` over $\{0.1, 0.3, 1.0\}$ on the demonstration batch and plot the
#    non-robust fraction against $\beta$.
# 4. Colour the t-SNE by the *sampled* label instead of the teacher's prediction. Where do they disagree?
