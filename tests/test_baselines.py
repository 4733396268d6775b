"""Baselines (baselines.md 3, 4, 5, 7): a smoke run of each, their learning signal, and their building blocks.

Each baseline runs once (module fixture) at the smoke profile with a few more student steps, on the session's
smoke teacher. Run: OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m pytest tests/test_baselines.py -q
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from engine_tiny import TinyCNN, images

from ferd.config import make_config
from ferd.method.baselines import (
    DERD,
    DFARD,
    DFHL,
    RSLAD,
    FairRSLAD,
    HighEntropy,
    KappaKLPGD,
    combine_gradients,
    fair_class_weights,
    pcgrad,
    stochastic_sign,
    strong_augment,
)
from ferd.method.baselines.derd import mtard_update
from ferd.method.baselines.dfard import agb_weights, ita_update
from ferd.method.baselines.dfhl import dfhl_generator_loss
from ferd.method.losses import entropy, kl_divergence
from ferd.method.methods import METHOD_CLASSES, method_class
from ferd.method.teachers import natural_teacher_config, train_teacher
from ferd.toolkit.artifacts import ArtifactStore
from ferd.toolkit.attacks import KLPGD, project, sign_ascent
from ferd.toolkit.runtime import threads

NAMES = ("dfhl", "dfard", "derd", "rslad", "fair_rslad")
# a few more student steps than the smoke profile's 2, so that learning is measurable; tracking at the end only
OVERRIDES = {"n_s": 6, "eval_every": 3, "real_train_size": 192}


def _weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.dtype.is_floating_point])


@pytest.fixture(scope="module")
def natural_teacher(smoke_store):
    return train_teacher(natural_teacher_config(make_config("smoke", "derd")), smoke_store, progress=False)[0]


def _build(name, smoke_teacher, store, **kw):
    cfg = make_config("smoke", name, OVERRIDES)
    return method_class(cfg)(cfg, teacher=smoke_teacher, store=store, progress=False, **kw)


@pytest.fixture(scope="module")
def runs(smoke_teacher, smoke_store, natural_teacher, tmp_path_factory):
    """name -> (distiller after its run, the student before training, DistillResult).

    DERD runs in the session store, where it finds the natural teacher that the fixture trained."""
    out = {}
    for name in NAMES:
        store = smoke_store if name == "derd" else ArtifactStore(tmp_path_factory.mktemp(name))
        d = _build(name, smoke_teacher, store)
        before = copy.deepcopy(d.student)
        out[name] = (d, before, d.run())
    return out


# ------------------------------------------------------------------ the runs
def test_registry_and_labels():
    for name in NAMES:
        assert method_class(make_config("smoke", name)) is METHOD_CLASSES[name]
    assert DFARD.label == "DFARD (approx.)" and DERD.label == "DERD (approx.)"
    assert "approx" not in DFHL.label and "approx" not in RSLAD.label
    assert "generator" not in RSLAD.needs and "pool" not in RSLAD.needs and "generator" in DFHL.needs
    assert "probe" not in DFHL.needs and "teacher_pair" in DERD.needs


@pytest.mark.parametrize("name", NAMES)
def test_run_finishes_with_finite_losses(runs, name):
    d, _, res = runs[name]
    h = res.history
    assert list(h["epoch"]) == [1, 2, 3]
    trained = h["student_loss"].notna()
    # data-free baselines keep the warm-up; the real-data references train from epoch 1
    assert list(trained) == ([True] * 3 if name in ("rslad", "fair_rslad") else [False, True, True])
    for col in [c for c in h.columns if "loss" in c or c.startswith("gen_")]:
        assert all(math.isfinite(v) for v in h[col].dropna()), col
    # no robustness probe: uniform labels every epoch, D never computed
    assert ((h[[f"p_{c}" for c in range(10)]] - 0.1).abs() < 1e-6).all().all()
    assert (h[[f"D_{c}" for c in range(10)]] == 0.0).all().all()
    if "generator" in d.needs:
        assert list(h["pool_size"]) == [32, 64, 96]
    else:  # RSLAD builds no generator, BN hooks or pool it would not use
        assert d.G is None and d.pool is None and d.bn is None and d.steps_per_epoch() == 190 // 32


@pytest.mark.parametrize("name", NAMES)
def test_student_learns_its_objective(runs, smoke_teacher, name):
    """On a fixed batch (the final pool, or the real subset), the trained student is much closer to what it is
    taught than the initial one: KL to the teacher for the distillation baselines, CE on the teacher's top-1 for
    DFHL. Train-mode forwards on copies, as in the student step (the smoke teacher is weak, so the eval-mode BN
    statistics of a 12-step student would dominate)."""
    d, before, res = runs[name]
    assert not torch.equal(_weights(before), _weights(res.student))
    x = d.pool.tensors()[0] if "generator" in d.needs else d.train_split.float_images(torch.arange(96))
    with torch.no_grad():
        t = smoke_teacher(x)
        s0, s1 = copy.deepcopy(before).train()(x), copy.deepcopy(res.student).train()(x)
    if name == "dfhl":
        first, last = F.cross_entropy(s0, t.argmax(1)), F.cross_entropy(s1, t.argmax(1))
        assert last < 0.75 * first, (float(first), float(last))
    else:
        first, last = kl_divergence(t, s0), kl_divergence(t, s1)
        assert last < 0.5 * first, (float(first), float(last))


def test_dfard_temperature_moves_within_range(runs):
    d, _, res = runs["dfard"]
    h = res.history
    assert h["dfard_tau"].iloc[:2].tolist() == [1.0, 1.0]  # tau_0 = 1; the first update follows epoch 2
    grads = h["dfard_tau_grad"].dropna().tolist()
    assert len(grads) == 2 and all(math.isfinite(g) for g in grads)
    tau = 1.0
    for g in grads:  # one clipped signed step per student epoch
        tau = ita_update(tau, g, d.d.dfard_ita_step)
    assert d.tau == tau and 1.0 <= d.tau <= 10.0
    assert d.extra_state()["agb_m"].shape == (3,)


def test_derd_weights_and_fair_rslad_weights_from_runs(runs, natural_teacher):
    d = runs["derd"][0]
    assert torch.equal(_weights(d.natural), _weights(natural_teacher))  # the stored natural teacher was reused
    h = runs["derd"][2].history
    assert ((h["derd_w_nat"] + h["derd_w_adv"] - 1).abs() < 1e-12).all()
    assert h["sga_conflict"].dropna().between(0, 1).all()
    h = runs["fair_rslad"][2].history
    w = h[[f"fair_w_{c}" for c in range(10)]].to_numpy()
    assert (w[0] == 1).all()  # w = 1 in the first epoch
    assert ((w >= 5 / 6 - 1e-6) & (w <= 5 / 2 + 1e-6)).all()


@pytest.mark.parametrize("sga", ["stochastic_sign", "sum"])
def test_derd_student_step_with_other_sga_modes(runs, smoke_teacher, smoke_store, sga):
    """One student step per SGA switch on the finished run's pool: finite loss, the student moves."""
    cfg = make_config("smoke", "derd", {**OVERRIDES, "derd_sga": sga})
    d = method_class(cfg)(cfg, teacher=smoke_teacher, store=smoke_store, progress=False)
    d.pool.append(*runs["derd"][0].pool.tensors())
    before = _weights(d.student)
    out = d.student_step(2, 0)
    assert math.isfinite(float(out["student_loss"])) and not torch.equal(before, _weights(d.student))


def test_dfhl_generator_is_persistent_with_its_latent_size(runs):
    d = runs["dfhl"][0]
    assert d.G.nz == 256 and d.G.l1.in_features == 256
    h = runs["dfhl"][2].history
    assert h["dfhl_label_match"].between(0, 1).all()


def test_dfard_resumes_to_the_same_result(runs, smoke_teacher, tmp_path):
    """tau and the AGB moving averages survive a restart (extra_state); DFHL's generator and the rest are the
    loop's own checkpoint."""
    _, _, full = runs["dfard"]
    d = _build("dfard", smoke_teacher, ArtifactStore(tmp_path))
    with threads(d.d.threads):  # run() trains with the configured (keyed) thread count: so must this
        for epoch in (1, 2):
            d.train_epoch(epoch)
            d.epoch = epoch
            d._save_checkpoint(d.run_dir / "checkpoint.pt")
    resumed = _build("dfard", smoke_teacher, ArtifactStore(tmp_path)).run()
    assert torch.equal(_weights(resumed.student), _weights(full.student))
    assert resumed.history["dfard_tau"].tolist() == full.history["dfard_tau"].tolist()


# ------------------------------------------------------------------ DFHL pieces
def test_strong_augment_keeps_shape_and_range():
    x = images(16, 1, 28, seed=3)
    out = strong_augment(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1 and not torch.allclose(out, x)
    # without crop, noise and rotation only the flips remain: each sample is x up to a v/h flip, exactly
    plain = strong_augment(x, crop=(1.0, 1.0), noise=0.0, angles=(0.0,), generator=torch.Generator().manual_seed(1))
    for a, b in zip(plain, x):
        assert any(torch.allclose(a, v, atol=1e-5) for v in (b, b.flip(-1), b.flip(-2), b.flip(-1).flip(-2)))
    # a 15-degree rotation (nearest) only moves pixel values or fills zeros
    rot = strong_augment(x, crop=(1.0, 1.0), noise=0.0, angles=(15.0,), generator=torch.Generator().manual_seed(2))
    values = torch.cat([x[0].flatten(), torch.zeros(1)])
    assert ((rot[0].flatten()[:, None] - values[None, :]).abs().min(1).values < 1e-5).all()


def test_high_entropy_examples_raise_entropy_without_an_eps_ball():
    torch.manual_seed(0)
    model = TinyCNN(width=4).eval()
    x = images(8, 1, 8)
    x_hee = HighEntropy(model, alpha=0.03, steps=10, seed=1)(x, torch.zeros(8, dtype=torch.long))
    assert x_hee.min() >= 0 and x_hee.max() <= 1
    assert (x_hee - x).abs().max() > 0.1 + 1e-6  # farther than any eps-ball of the profiles
    with torch.no_grad():
        assert entropy(model(x_hee)) > entropy(model(x))
    # it is sign_ascent with eps = 1 on the summed entropy, from x + 0.001 N(0, I)
    start = x + 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    ref = sign_ascent(model, x, start, lambda z, _: entropy(z, reduction="sum"), 1.0, 0.03, 10)
    assert torch.allclose(x_hee, ref, atol=1e-6)


def test_dfhl_generator_loss_terms():
    y = torch.tensor([0, 3, 3, 7])
    C, eta = 10, 0.2
    target = torch.full((4, C), eta / (C - 1)).scatter(1, y[:, None], 1 - eta)
    total, ls_kl, div = dfhl_generator_loss(target.log(), y, eta, 3.0)  # logits = log LS(y): KL = 0
    assert ls_kl.abs() < 1e-6
    p_bar = target.mean(0)
    assert torch.allclose(div, (p_bar * torch.log10(p_bar)).sum())
    assert torch.allclose(total, ls_kl + 3.0 * div)


# ------------------------------------------------------------------ DFARD pieces
def test_ita_update_is_a_clipped_sign_step():
    assert ita_update(1.0, 0.3, 0.25) == 1.25
    assert ita_update(1.0, -0.3, 0.25) == 1.0  # clipped at 1
    assert ita_update(9.9, 5.0, 0.25) == 10.0  # clipped at 10
    assert ita_update(4.0, 0.0, 0.25) == 4.0
    assert ita_update(4.0, 0.3, 0.25, direction="descent") == 3.75


def test_agb_weights_equalise_the_terms():
    terms = torch.tensor([10.0, 1.0, -0.1])
    w, m = agb_weights(None, terms)
    assert torch.allclose(m, terms.abs())
    contrib = w * m
    assert torch.allclose(contrib, torch.full((3,), float(m.mean())), rtol=1e-5)
    w2, m2 = agb_weights(m, torch.tensor([0.0, 1.0, 0.1]))
    assert torch.allclose(m2, 0.9 * m + 0.1 * torch.tensor([0.0, 1.0, 0.1]))


# ------------------------------------------------------------------ DERD pieces
def test_pcgrad_removes_the_conflicting_component():
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])  # g1 . g2 = -1 < 0
    p1, p2 = pcgrad(g1, g2)
    assert torch.allclose(p1, torch.tensor([0.5, 0.5])) and torch.allclose(p2, torch.tensor([0.0, 1.0]))
    assert abs(float(p1 @ g2)) < 1e-7 and abs(float(p2 @ g1)) < 1e-7
    assert torch.allclose(combine_gradients(g1, g2, "pcgrad"), torch.tensor([0.5, 1.5]))
    h1, h2 = torch.tensor([1.0, 2.0]), torch.tensor([0.5, -0.1])  # no conflict: unchanged
    q1, q2 = pcgrad(h1, h2)
    assert torch.equal(q1, h1) and torch.equal(q2, h2)


def test_stochastic_sign_keeps_agreement_and_picks_by_magnitude():
    n = 20000
    g1 = torch.cat([torch.full((n,), 3.0), torch.tensor([1.0, -2.0])])
    g2 = torch.cat([torch.full((n,), -1.0), torch.tensor([0.5, -1.0])])
    out = stochastic_sign(g1, g2, torch.Generator().manual_seed(0))
    assert torch.equal(out[n:], torch.tensor([1.5, -3.0]))  # same signs: summed
    assert torch.isin(out[:n], torch.tensor([3.0, -1.0])).all()
    assert abs(float((out[:n] == 3.0).float().mean()) - 0.75) < 0.02  # P(keep g1) = 3 / (3 + 1)


def test_mtard_update_moves_towards_the_lagging_task():
    assert mtard_update(0.5, (2.0, 1.0), (2.0, 1.0)) == 0.5  # first epoch: r_nat = r_adv
    up = mtard_update(0.5, (2.0, 0.5), (2.0, 1.0))  # the adversarial loss fell faster: weigh natural more
    assert up == pytest.approx(0.5 - 0.025 * (0.5 - 1 / 1.5))
    assert up > 0.5


# ------------------------------------------------------------------ Fair-RSLAD pieces
def test_fair_class_weights_are_clipped_and_favour_hard_classes():
    kappa = torch.tensor([0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 9.0, 9.5, 10.0])
    w = fair_class_weights(kappa, beta=2.0)
    assert (w >= 5 / 6 - 1e-6).all() and (w <= 5 / 2 + 1e-6).all()
    assert (w[:-1] >= w[1:]).all()  # fewer correct iterates (harder class) -> larger weight
    assert torch.allclose(fair_class_weights(torch.full((10,), 4.0), 2.0), torch.ones(10))


def test_kappa_counts_correct_iterates_like_a_loop():
    torch.manual_seed(0)
    model = TinyCNN(width=4).eval()
    x = images(8, 1, 8)
    with torch.no_grad():
        t = model(x) * 3
    y = t.argmax(1)
    y[:3] = (y[:3] + 1) % 10  # some samples start misclassified
    x_adv, kappa = KappaKLPGD(model, eps=0.1, alpha=0.025, steps=5, seed=2).count(x, t, y)
    assert torch.equal(x_adv, KLPGD(model, eps=0.1, alpha=0.025, steps=5, seed=2)(x, t))
    ref = torch.zeros(8)
    xi = x + 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    for _ in range(5):  # the loop reference: count at each iterate, then step
        xi.requires_grad_(True)
        logits = model(xi)
        ref += (logits.argmax(1) == y).float()
        (g,) = torch.autograd.grad(F.kl_div(F.log_softmax(logits, 1), F.log_softmax(t, 1), reduction="sum",
                                            log_target=True), xi)
        xi = project(xi.detach() + 0.025 * g.sign(), x, 0.1)
    assert torch.equal(kappa, ref)
    assert (kappa <= 5).all() and kappa.sum() > 0


def test_fair_rslad_uses_nesterov(runs):
    d = runs["fair_rslad"][0]
    assert isinstance(d, FairRSLAD) and d.opt.param_groups[0]["nesterov"]
    assert not runs["rslad"][0].opt.param_groups[0]["nesterov"]
