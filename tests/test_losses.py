"""Tests of ferd.method.losses: uniformity KL, IKL reductions, BN-statistics loss, student loss (spec 5.3, 5.8; section 10 items 3, 4, 9).

Run: OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m pytest tests/test_losses.py -q
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from engine_tiny import images, tiny_teacher

from ferd.method.losses import (
    BNStatsLoss,
    entropy,
    ikl,
    ikl_pairwise,
    kl_divergence,
    onehot_prior,
    soft_cross_entropy,
    student_loss,
    teacher_prior,
    uniform_kl,
)


def test_uniform_kl_zero_at_uniform_positive_elsewhere():
    assert float(uniform_kl(torch.zeros(4, 10))) == 0.0
    assert float(uniform_kl(torch.full((3, 7), 2.5))) == 0.0
    assert abs(float(uniform_kl(torch.full((3, 7), -13.3)))) < 1e-5
    logits = torch.randn(4, 10)
    per = uniform_kl(logits, reduction="none")
    assert per.shape == (4,) and bool((per > 0).all())
    ref = (0.1 * (math.log(0.1) - F.log_softmax(logits, 1))).sum(1)
    assert torch.allclose(per, ref, atol=1e-6)


def test_ikl_onehot_reduces_to_soft_ce_and_kl():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(6, 5, generator=g, requires_grad=True)
    t = torch.randn(6, 5, generator=g)
    prior = onehot_prior(torch.tensor([0, 1, 2, 3, 4, 0]), 5)
    assert float(ikl_pairwise(s, t, prior).detach()) == 0.0  # exactly
    value = ikl(s, t, prior)
    sce = soft_cross_entropy(s, t)
    assert float(value.detach()) == float(sce.detach())
    assert torch.allclose(value, kl_divergence(t, s) + entropy(t), atol=1e-6)
    (g_ikl,) = torch.autograd.grad(value, s)
    (g_kl,) = torch.autograd.grad(kl_divergence(t, s), s)
    assert torch.allclose(g_ikl, g_kl, atol=1e-7)
    assert torch.allclose(g_ikl, (F.softmax(s, 1) - F.softmax(t, 1)) / 6, atol=1e-7)


def _pairwise_bruteforce(s, t, prior):
    delta_t = t[:, :, None] - t[:, None, :]  # [B, C, C]
    delta_s = s[:, :, None] - s[:, None, :]
    w = prior[:, :, None] * prior[:, None, :]
    return 0.25 * ((delta_t - delta_s).square() * w).sum() / w.sum()


def test_ikl_teacher_prior_vectorised_matches_bruteforce():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(5, 7, generator=g, dtype=torch.float64), torch.randn(5, 7, generator=g, dtype=torch.float64)
    for prior in (teacher_prior(t, 100.0), teacher_prior(t, 1.0), torch.rand(5, 7, generator=g, dtype=torch.float64)):
        assert torch.allclose(ikl_pairwise(s, t, prior), _pairwise_bruteforce(s, t, prior), rtol=1e-10)
    prior = teacher_prior(t)
    assert torch.allclose((prior[:, :, None] * prior[:, None, :]).sum(), torch.tensor(5.0, dtype=torch.float64))
    assert torch.allclose(ikl(t, t, prior), entropy(t), atol=1e-12)


def test_soft_ce_detaches_teacher_and_student_loss_weights():
    s_c, s_a = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3, requires_grad=True)
    soft_cross_entropy(s_c, t).backward()
    assert t.grad is None and s_c.grad is not None
    out = student_loss(s_c, s_a, t.detach(), onehot_prior(torch.tensor([0, 1, 2, 0]), 3))
    expected = 5 / 6 * soft_cross_entropy(s_c, t) + 1 / 6 * soft_cross_entropy(s_a, t)
    assert torch.allclose(out.total, expected) and torch.allclose(out.clean, soft_cross_entropy(s_c, t))


def test_bn_loss_nonnegative_zero_at_running_stats_and_recording_gate():
    teacher = tiny_teacher()
    x = images(8, 1, 8)
    bn = BNStatsLoss(teacher)
    assert bn.num_layers == 2
    with pytest.raises(RuntimeError):
        bn.loss()
    teacher(x)  # outside recording(): nothing is stored
    with pytest.raises(RuntimeError):
        bn.loss()
    with bn.recording():
        teacher(x)
    first = bn.loss()
    assert float(first.detach()) > 0
    teacher(images(8, 1, 8, seed=5))  # not recorded: the loss still describes x
    assert torch.equal(bn.loss(), first)
    # make each layer's running statistics the biased batch statistics of x's input to it
    with torch.no_grad():
        a1 = teacher.conv1(x)
        teacher.bn1.running_mean.copy_(a1.mean((0, 2, 3)))
        teacher.bn1.running_var.copy_(a1.var((0, 2, 3), unbiased=False))
        a2 = teacher.conv2(F.relu(teacher.bn1(a1)))
        teacher.bn2.running_mean.copy_(a2.mean((0, 2, 3)))
        teacher.bn2.running_var.copy_(a2.var((0, 2, 3), unbiased=False))
    with bn.recording():
        teacher(x)
    assert 0.0 <= float(bn.loss().detach()) < 1e-5
    bn.remove()
    assert all(not m._forward_hooks for m in teacher.modules())


def test_bn_loss_gradient_reaches_input():
    teacher = tiny_teacher()
    bn = BNStatsLoss(teacher)
    x = images(4, 1, 8).requires_grad_(True)
    with bn.recording():
        teacher(x)
    bn.loss().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
