"""ferd.toolkit.attacks: the one interface, the shared projected step, seeding, strength (spec 2.1, 10.7)."""
from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F
from toy_problem import conv_bn, make_split, mlp, trained_mlp

from ferd.errors import ConfigError
from ferd.toolkit.attacks import (
    ATTACKS,
    FGSM,
    KLPGD,
    PGD,
    AutoAttack,
    Clean,
    CWInf,
    TargetedPGD,
    build_attack,
    cw_objective,
    kl_objective,
    project,
    sign_ascent,
)

EPS, ALPHA = 0.1, 0.025
PARAMS = {
    "clean": {}, "fgsm": {"eps": EPS}, "pgd": {"eps": EPS, "alpha": ALPHA, "steps": 5},
    "cw": {"eps": EPS, "alpha": ALPHA, "steps": 5}, "kl_pgd": {"eps": EPS, "alpha": ALPHA, "steps": 5},
    "aa": {"eps": EPS, "n_iter": 3, "n_queries": 10},
}


@pytest.fixture(scope="module")
def trained():
    return trained_mlp()


@pytest.fixture(scope="module")
def batch():
    split = make_split(n_per_class=50, seed=5)
    return split.images, split.labels


def _target(name, model, x, y):
    return model(x).detach() if name == "kl_pgd" else y


def _accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@pytest.mark.parametrize("name", list(ATTACKS))
def test_output_in_box_and_ball_and_modes_restored(name):
    torch.manual_seed(0)
    model = conv_bn()
    model.train()
    model[3].eval()  # a mixed-mode model must come back exactly as it was
    split = make_split(n_per_class=2)
    x, y = split.images, split.labels
    target = _target(name, model, x, y)
    x_adv = build_attack(name, model, **PARAMS[name])(x, target)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() <= PARAMS[name].get("eps", 0.0) + 1e-6
    assert [m.training for m in model.modules()] == [True, True, True, True, False, True, True, True]
    assert all(p.grad is None for p in model.parameters())  # gradients w.r.t. the input only


@pytest.mark.parametrize("name", ["fgsm", "pgd", "cw", "kl_pgd", "aa"])
def test_seeded_reproducible_and_global_rng_untouched(name, trained, batch):
    x, y = batch[0][:40], batch[1][:40]
    target = _target(name, trained, x, y)
    state = torch.get_rng_state()
    first = build_attack(name, trained, **PARAMS[name])
    a = first(x, target)
    b = build_attack(name, trained, **PARAMS[name])(x, target)
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state)
    if name != "aa":  # our generator moves on between calls; reset_rng rewinds it
        assert not torch.equal(first(x, target), a)
        first.reset_rng()
        assert torch.equal(first(x, target), a)
        other = build_attack(name, trained, **PARAMS[name], seed=1)(x, target)
        assert not torch.equal(other, a)


def test_attacks_lower_accuracy_and_pgd_beats_fgsm(trained, batch):
    x, y = batch
    clean = _accuracy(trained, Clean(trained)(x, y), y)
    fgsm = _accuracy(trained, FGSM(trained, EPS)(x, y), y)
    pgd = _accuracy(trained, PGD(trained, EPS, ALPHA, 20)(x, y), y)
    cw = _accuracy(trained, CWInf(trained, EPS, ALPHA, 20)(x, y), y)
    assert clean > 0.95
    assert pgd < clean - 0.2 and cw < clean - 0.2
    assert pgd <= fgsm < clean


def test_pgd_matches_torchattacks(trained, batch):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = batch
    for random_start in (False, True):
        ours = PGD(trained, EPS, ALPHA, 10, random_start=random_start, seed=0)(x, y)
        torch.manual_seed(0)  # torchattacks draws its start from the global generator
        ref = torchattacks.PGD(trained, eps=EPS, alpha=ALPHA, steps=10, random_start=random_start)(x, y)
        torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)
    ours = FGSM(trained, EPS, start="none")(x, y)
    torch.testing.assert_close(ours, torchattacks.FGSM(trained, eps=EPS)(x, y), atol=1e-6, rtol=0)


def test_cw_objective_sign():
    logits = torch.tensor([[5.0, 1.0, 2.0], [0.0, 3.0, 1.0]])
    y = torch.tensor([0, 0])
    # margins z_y - max_{j!=y} z_j: 3 (correct) and -3 (wrong); kappa = 1 -> clamp(4), clamp(-2) = 0
    assert cw_objective(logits, y, kappa=1.0).item() == pytest.approx(-4.0)
    assert cw_objective(logits[1:], y[1:], kappa=1.0).item() == 0.0
    # ascending the objective lowers the margin of the true class
    z = logits[:1].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(cw_objective(z, y[:1], 50.0), z)
    assert grad[0, 0] < 0 and grad[0, 2] > 0 and grad[0, 1] == 0


def test_cw_lowers_margin(trained, batch):
    x, y = batch

    def margin(inp):
        z = trained(inp).detach()
        return (z.gather(1, y[:, None]).squeeze(1)
                - z.masked_fill(F.one_hot(y, 4).bool(), -1e9).max(1).values)

    assert (margin(CWInf(trained, EPS, ALPHA, 10)(x, y)) < margin(x)).float().mean() > 0.95


def test_klpgd_increases_kl_and_start_is_not_clamped(trained, batch):
    x = batch[0]
    teacher = trained(x).detach()
    x_adv = KLPGD(trained, EPS, ALPHA, 10)(x, teacher)
    assert kl_objective(trained(x_adv), teacher).item() > kl_objective(trained(x), teacher).item() + 1.0
    attack = KLPGD(trained, EPS, ALPHA, 0, start_noise=0.5)
    start = attack.start(torch.ones(2, 1, 6, 6))
    assert start.max() > 1  # spec 5.7: no clamp before the first step; __call__ still projects


def test_klpgd_objective_override_is_the_utae_hook(trained, batch):
    """A subclass that only changes ``objective`` (as UTAE does) goes through the same step."""

    class ZeroGammaUTAE(KLPGD):
        def objective(self, logits, teacher_logits):
            uniform = torch.full_like(logits, 1.0 / logits.shape[1])
            return super().objective(logits, teacher_logits) - 0.0 * F.kl_div(
                F.log_softmax(logits, 1), uniform, reduction="sum")

    x = batch[0]
    teacher = trained(x).detach()
    torch.testing.assert_close(ZeroGammaUTAE(trained, EPS, ALPHA, 5)(x, teacher),
                               KLPGD(trained, EPS, ALPHA, 5)(x, teacher), atol=0, rtol=0)


def test_sign_ascent_and_project():
    x = torch.full((1, 1, 2, 2), 0.95)
    start = x + 0.3
    assert torch.equal(sign_ascent(mlp(size=2), x, start, lambda z, _: z.sum(), 0.1, 0.02, 0), start)
    projected = project(torch.tensor([[1.4, 0.5, 0.9]]), torch.tensor([[0.95, 0.9, 0.9]]), 0.1)
    torch.testing.assert_close(projected, torch.tensor([[1.0, 0.8, 0.9]]))


def test_targeted_pgd_reaches_target(trained, batch):
    x, y = batch
    target = (y + 1) % 4
    x_adv = TargetedPGD(trained, 0.3, 0.05, 20)(x, target)
    assert (trained(x_adv).argmax(1) == target).float().mean() > 0.8


def test_repr_and_hyperparameters(trained):
    attack = CWInf(trained, 0.1, 0.025, 20)
    assert repr(attack) == ("CWInf(eps=0.1, alpha=0.025, steps=20, random_start=True, loss='cw', "
                            "seed=0, kappa=50.0)")
    assert "model" not in attack.hyperparameters
    assert repr(TargetedPGD(trained, 0.1, 0.025, 2)) == (
        "TargetedPGD(eps=0.1, alpha=0.025, steps=2, random_start=True, seed=0)")


@pytest.mark.parametrize("bad", [
    {"eps": 0.0}, {"eps": 1.0}, {"eps": -0.1}, {"eps": float("nan")}, {"alpha": 0},
    {"steps": -1}, {"steps": 2.5}, {"steps": True}, {"seed": -1}, {"loss": "dlr"},
    {"random_start": 1},
])
def test_bad_hyperparameters_raise_config_error(trained, bad):
    params = {"eps": 0.1, "alpha": 0.025, "steps": 3, **bad}
    field = next(iter(bad))
    with pytest.raises(ConfigError, match=field):
        PGD(trained, **params)


def test_other_validation(trained):
    with pytest.raises(ConfigError, match="start"):
        FGSM(trained, 0.1, start="uniform")
    with pytest.raises(ConfigError, match="kappa"):
        CWInf(trained, 0.1, 0.025, 3, kappa=-1.0)
    with pytest.raises(ConfigError, match="n_target_classes"):
        AutoAttack(trained, 0.1, n_target_classes=0)
    with pytest.raises(ConfigError, match="'clean', 'fgsm', 'pgd', 'cw', 'kl_pgd', 'aa'"):
        build_attack("pgd20", trained)
    with pytest.raises(ConfigError, match="kappa"):
        build_attack("pgd", trained, eps=0.1, alpha=0.01, steps=2, kappa=3.0)
    with pytest.raises(ConfigError, match="model"):
        PGD(lambda x: x, 0.1, 0.01, 2)
    x, y = make_split(n_per_class=1).images, torch.arange(4)
    with pytest.raises(ConfigError, match="range"):
        PGD(trained, 0.1, 0.01, 2)(x * 255, y)
    with pytest.raises(ConfigError, match="target"):
        PGD(trained, 0.1, 0.01, 2)(x, y.int())
    with pytest.raises(ConfigError, match="target"):
        KLPGD(trained, 0.1, 0.01, 2)(x, y)
    with pytest.raises(ConfigError, match="num_classes"):
        AutoAttack(trained_mlp(num_classes=3, steps=1), 0.1)(make_split(1, 3).images,
                                                             torch.arange(3))


def test_autoattack_reduced_budget(trained, batch):
    x, y = batch[0][::25], batch[1][::25]  # 8 images, 2 per class
    start = time.perf_counter()
    x_adv = AutoAttack(trained, EPS, n_iter=10, n_queries=50)(x, y)
    assert time.perf_counter() - start < 10
    assert (x_adv - x).abs().max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert _accuracy(trained, x_adv, y) <= _accuracy(trained, PGD(trained, EPS, ALPHA, 20)(x, y), y)
