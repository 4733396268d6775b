"""Tests of ferd.method.utae: gamma = 0 is KL-PGD, box constraints, pull towards uniform (spec 5.7; section 10 item 7).

Run: OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m pytest tests/test_utae.py -q
"""
from __future__ import annotations

import pytest
import torch
from engine_tiny import TinyCNN, images

from ferd.errors import ConfigError
from ferd.method.losses import uniform_kl
from ferd.method.utae import UTAE
from ferd.toolkit.attacks import KLPGD


def _utae_setup():
    torch.manual_seed(0)
    student = TinyCNN(width=4)
    x = images(6, 1, 8)
    t = torch.randn(6, 10, generator=torch.Generator().manual_seed(2)) * 3
    return student, x, t


def test_utae_gamma0_equals_klpgd_step_for_step():
    student, x, t = _utae_setup()
    for steps in range(5):
        a = UTAE(student, eps=0.1, alpha=0.025, steps=steps, gamma=0.0, seed=4)(x, t)
        b = KLPGD(student, eps=0.1, alpha=0.025, steps=steps, seed=4)(x, t)
        assert torch.equal(a, b)
    assert "gamma=0.0" in repr(UTAE(student, eps=0.1, alpha=0.025, steps=1, gamma=0.0))
    with pytest.raises(ConfigError):
        UTAE(student, eps=0.1, alpha=0.025, steps=1, gamma=-0.1)


def test_utae_stays_in_box_and_restores_mode():
    student, x, t = _utae_setup()
    student.train()
    x_u = UTAE(student, eps=0.1, alpha=0.025, steps=5, gamma=0.5)(x, t)
    assert student.training
    assert float(x_u.min()) >= 0 and float(x_u.max()) <= 1
    assert float((x_u - x).abs().max()) <= 0.1 + 1e-6


def test_larger_gamma_pulls_adversarial_prediction_towards_uniform():
    student, x, t = _utae_setup()
    with torch.no_grad():  # a confident student, so the KL and uniform terms pull apart
        student.fc.weight.mul_(10.0)
        student.bn2.weight.mul_(3.0)
    student.eval()
    with torch.no_grad():
        u = [float(uniform_kl(student(UTAE(student, eps=0.1, alpha=0.025, steps=10, gamma=g)(x, t))))
             for g in (0.0, 0.3, 0.9)]
    assert u[0] > u[1] > u[2]
