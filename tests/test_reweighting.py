"""Tests of ferd.method.reweighting: margins, vulnerability, class-weight rules, probe (spec 5.6; section 10 items 5, 6).

Run: OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m pytest tests/test_reweighting.py -q
"""
from __future__ import annotations

import pytest
import torch
from engine_tiny import images, tiny_teacher

from ferd.errors import ConfigError
from ferd.method.reweighting import (
    CLASS_WEIGHT_RULES,
    class_weights,
    margins,
    minmax_weights,
    probe_vulnerability,
    softmax_weights,
    uniform_weights,
    vulnerability,
)
from ferd.toolkit.attacks import PGD


def test_margins_sign_matches_misclassification():
    logits = torch.randn(50, 10, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (50,), generator=torch.Generator().manual_seed(1))
    m = margins(logits, y)
    assert torch.equal(m < 0, logits.argmax(1) != y)
    y0 = logits.argmax(1)
    top2 = logits.topk(2, dim=1).values
    assert torch.allclose(margins(logits, y0), top2[:, 0] - top2[:, 1])


def test_vulnerability_loop_reference_and_absent_policies():
    m = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0])
    y = torch.tensor([0, 0, 2, 2, 2])
    D = vulnerability(m, y, 4)
    assert torch.allclose(D, torch.tensor([0.5, 0.0, -2.5 / 3, 0.0]))
    prev = torch.tensor([9.0, 7.0, 9.0, 5.0])
    D2 = vulnerability(m, y, 4, absent_policy="carry_forward", previous=prev)
    assert torch.allclose(D2, torch.tensor([0.5, 7.0, -2.5 / 3, 5.0]))
    with pytest.raises(ConfigError):
        vulnerability(m, y, 4, absent_policy="min")


def test_softmax_weights_properties():
    D = torch.tensor([-1.0, 0.3, 0.0, 2.0, 0.7])
    p = softmax_weights(D)
    assert abs(float(p.sum()) - 1) < 1e-6
    order = D.argsort()
    assert bool((p[order].diff() > 0).all())
    assert torch.allclose(softmax_weights(D + 3.7), p, atol=1e-7)
    assert torch.allclose(softmax_weights(D, tau=2.0), torch.softmax(D / 2, 0))
    with pytest.raises(ConfigError):
        softmax_weights(D, tau=0.0)


def test_minmax_weights_properties():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        p = minmax_weights(torch.randn(10, generator=g) * 3)
        assert abs(float(p.sum()) - 1) < 1e-6 and float(p.max()) <= 0.2 / 0.65 + 1e-7  # 0.3077
        assert float(p.max() / p.min()) <= 4.0 + 1e-5  # within [0.05, 0.2] before normalising
    D = torch.zeros(10)
    D[-1] = 1.0
    expected = torch.full((10,), 0.05)
    expected[-1] = 0.2
    assert torch.allclose(minmax_weights(D), expected / 0.65, atol=1e-7)


def test_equal_D_gives_uniform_and_class_weights_dispatch():
    D = torch.full((7,), 0.4)
    for name in CLASS_WEIGHT_RULES:
        assert torch.allclose(class_weights(D, name), torch.full((7,), 1 / 7))
    assert torch.allclose(uniform_weights(torch.randn(4)), torch.full((4,), 0.25))
    custom = class_weights(torch.tensor([0.0, 1.0]), lambda D, power=2: (D + 1) ** power / ((D + 1) ** power).sum(),
                           power=1)
    assert torch.allclose(custom, torch.tensor([1 / 3, 2 / 3]))
    with pytest.raises(ConfigError):
        class_weights(D, "sofmax")
    with pytest.raises(ConfigError):
        class_weights(D, lambda D: D)


def test_probe_eval_keeps_bn_buffers_and_train_leak_changes_them():
    teacher = tiny_teacher(dropout=0.3)
    x, y = images(8, 1, 8), torch.randint(0, 10, (8,), generator=torch.Generator().manual_seed(0))
    attack = PGD(teacher, eps=0.1, alpha=0.025, steps=3)
    buffers = {k: v.clone() for k, v in teacher.named_buffers()}
    D, m = probe_vulnerability(teacher, x, y, attack, 10)
    assert D.shape == (10,) and m.shape == (8,)
    assert all(torch.equal(buffers[k], v) for k, v in teacher.named_buffers())
    assert not teacher.training
    # margins agree with a plain eval forward on the same adversarial batch
    x_adv = PGD(teacher, eps=0.1, alpha=0.025, steps=3)(x, y)
    with torch.no_grad():
        assert torch.allclose(m, margins(teacher(x_adv), y))
    probe_vulnerability(teacher, x, y, attack, 10, teacher_mode="train_leak")
    assert not torch.equal(buffers["bn1.running_mean"], teacher.bn1.running_mean)
    assert int(teacher.bn1.num_batches_tracked) == int(buffers["bn1.num_batches_tracked"]) + 1
    assert not teacher.training and not teacher.bn1.training
    with pytest.raises(ConfigError):
        probe_vulnerability(teacher, x, y, attack, 10, teacher_mode="train")
