"""Tests of ferd.method.fae: IB fit (against a per-sample loop reference), mask, uniformity loss (spec 5.4; section 10 item 8).

Run: OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m pytest tests/test_fae.py -q
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from engine_tiny import TinyCNN, images, tiny_teacher

from ferd.errors import ConfigError
from ferd.method.fae import fae_term, ib_fit, ib_kl, robust_mask, spatial_variance, uniformity_loss
from ferd.method.generator import Generator, reinit_generator
from ferd.method.losses import BNStatsLoss, ikl, teacher_prior, uniform_kl
from ferd.toolkit.augment import augment


def ib_fit_loop_reference(head, Z, y, steps, lr, beta, noise_draws):
    """Per-sample IB fit as a straightforward loop (one Lambda_b and one Adam per sample).

    The batched loss is (1/B) sum_b [CE_b + beta * mean_k KL_bk] and the head treats samples independently, so
    Lambda_b's gradient is that of its own share (CE_b + beta * mean_k KL_bk) / B: fitting each sample alone on
    that share, with the same noise, must give the same s*. (Without the 1/B, Adam's eps alone moves s* ~1e-5.)
    """
    B = Z.shape[0]
    out = []
    for b in range(Z.shape[0]):
        zb = Z[b: b + 1]
        vb = zb.var(dim=(2, 3))
        lam = torch.zeros(1, Z.shape[1], 1, 1, requires_grad=True)
        opt = torch.optim.Adam([lam], lr=lr)
        for i in range(steps):
            s = F.softplus(lam)
            logits = head(zb + s * noise_draws[i][b: b + 1])
            s2 = s.flatten(1) ** 2
            kl = (0.5 * (vb / (s2 + 1e-10) + torch.log((s2 + 1e-10) / (vb + 1e-10)) - 1)).mean()
            loss = (F.cross_entropy(logits, y[b: b + 1]) + beta * kl) / B
            opt.zero_grad()
            loss.backward()
            opt.step()
        out.append(F.softplus(lam).detach())
    return torch.cat(out)


@pytest.mark.parametrize("noise", ["per_channel", "per_element"])
def test_ib_fit_vectorised_matches_loop_reference(noise):
    teacher = tiny_teacher()
    for p in teacher.parameters():
        p.requires_grad_(False)  # the reference uses .backward(); keep the teacher clean
    Z = teacher.features(images(4, 1, 8))
    y = torch.tensor([0, 3, 3, 7])
    steps = 6
    s_star = ib_fit(teacher.head, Z, y, steps=steps, lr=0.1, beta=0.3, noise=noise,
                    generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    shape = (4, Z.shape[1], 1, 1) if noise == "per_channel" else tuple(Z.shape)
    draws = [torch.randn(shape, generator=g) for _ in range(steps)]
    ref = ib_fit_loop_reference(teacher.head, Z.detach(), y, steps, 0.1, 0.3, draws)
    assert s_star.shape == (4, Z.shape[1], 1, 1)
    assert torch.allclose(s_star, ref, atol=1e-6, rtol=0)
    assert not torch.allclose(s_star, torch.full_like(s_star, math.log(2.0)))  # it moved


def test_ib_fit_leaves_teacher_untouched_and_kl_matches_release_form():
    teacher = tiny_teacher()  # parameters still require grad: ib_fit must not accumulate into them
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    Z = teacher.features(images(3, 1, 8))
    s_star = ib_fit(teacher.head, Z.detach(), torch.tensor([1, 2, 3]), steps=3)
    assert s_star.shape == (3, 16, 1, 1) and not s_star.requires_grad and bool((s_star > 0).all())
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    v = spatial_variance(Z.detach())
    s = torch.full((3, 16, 1, 1), math.log(2.0))
    ref = 0.5 * (v / (s.flatten(1) ** 2 + 1e-10) + torch.log((s.flatten(1) ** 2 + 1e-10) / (v + 1e-10)) - 1)
    assert torch.allclose(ib_kl(v, s), ref.mean())
    with pytest.raises(ConfigError):
        ib_fit(teacher.head, Z.detach(), torch.tensor([1, 2, 3]), steps=1, noise="per_pixel")


def test_robust_mask_threshold_and_no_grad():
    Z = torch.randn(2, 3, 4, 4, requires_grad=True)
    v_max = float(Z.detach().var(dim=(2, 3)).max())
    s_star = torch.tensor([[0.5, 2.0, 1.0], [3.0, 0.1, 0.0]]).view(2, 3, 1, 1) * math.sqrt(v_max)
    s_star.requires_grad_(True)
    M = robust_mask(s_star, Z)
    assert M.shape == (2, 3, 1, 1) and M.dtype == Z.dtype
    assert not M.requires_grad and M.grad_fn is None
    assert M.flatten().tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]  # s^2 > v_max strictly


def test_uniformity_gradients_reach_generator_and_z_but_not_teacher():
    torch.manual_seed(0)
    teacher, student = tiny_teacher(), TinyCNN(width=4).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)  # frozen, as in spec 5.2
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    G = Generator(nz=8, img_size=8, nc=1, ngf=4).train()
    reinit_generator(G, torch.Generator().manual_seed(0))
    z = torch.randn(6, 8, requires_grad=True)
    opt = torch.optim.Adam([{"params": G.parameters()}, {"params": [z], "lr": 0.015}], lr=2e-3, betas=(0.5, 0.999))
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    bn = BNStatsLoss(teacher)
    xh = augment(G(z), padding=1, generator=torch.Generator().manual_seed(0))
    with bn.recording():
        Z = teacher.features(xh)
        t = teacher.head(Z)
    L_uni, info = fae_term(teacher.head, Z, y, steps=50, generator=torch.Generator().manual_seed(0))
    assert 0.0 < info["nonrobust_fraction"] < 1.0  # some channels of each kind, so Z_nr carries gradient
    # the uniformity term alone reaches G and z through Z
    grads = torch.autograd.grad(L_uni, [z, *G.parameters()], retain_graph=True, allow_unused=True)
    assert all(g is not None for g in grads) and float(grads[0].abs().sum()) > 0
    assert float(grads[1].abs().sum()) > 0  # l1 weight
    # a whole generator step
    s = student(xh)
    loss = 5 * bn.loss() - ikl(s, t, teacher_prior(t)) + F.cross_entropy(t, y) + 5 * L_uni
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(teacher_before[k], v) for k, v in teacher.state_dict().items())
    bn.remove()


def test_uniformity_loss_uses_only_nonrobust_channels():
    teacher = tiny_teacher()
    Z = teacher.features(images(3, 1, 8)).detach().requires_grad_(True)
    M = torch.zeros(3, 16, 1, 1)
    M[:, :8] = 1.0
    uniformity_loss(teacher.head, Z, M).backward()
    assert float(Z.grad[:, :8].abs().sum()) == 0.0 and float(Z.grad[:, 8:].abs().sum()) > 0
    assert torch.allclose(uniformity_loss(teacher.head, Z, torch.ones_like(M)),
                          uniform_kl(teacher.head(torch.zeros_like(Z))))
