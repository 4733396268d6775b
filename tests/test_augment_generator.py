"""Tests of ferd.toolkit.augment and ferd.method.generator (spec 4.5, 5.2; section 10 item 2).

Run: OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m pytest tests/test_augment_generator.py -q
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from engine_tiny import images
from torch import nn

from ferd.errors import ConfigError
from ferd.method.generator import Generator, reinit_generator
from ferd.toolkit.augment import augment


def test_augment_shape_seed_and_loop_reference():
    x = images(5, 3, 8)
    out = augment(x, padding=2, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, augment(x, padding=2, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(out, augment(x, padding=2, generator=torch.Generator().manual_seed(2)))
    # per-sample loop reference with the same draws
    g = torch.Generator().manual_seed(1)
    oy, ox = torch.randint(0, 5, (5,), generator=g), torch.randint(0, 5, (5,), generator=g)
    flips = torch.rand(5, generator=g) < 0.5
    for i in range(5):
        ref = F.pad(x[i], (2, 2, 2, 2))[:, oy[i]: oy[i] + 8, ox[i]: ox[i] + 8]
        ref = ref.flip(-1) if flips[i] else ref
        assert torch.equal(out[i], ref)
    assert torch.equal(augment(x, padding=0, flip=False), x)


def test_augment_is_differentiable():
    x = images(4, 1, 8).requires_grad_(True)
    out = augment(x, padding=4, generator=torch.Generator().manual_seed(0))
    out.sum().backward()
    # every output pixel copies one input pixel or a zero pad: grads are counts in {0, 1}
    assert x.grad is not None and set(x.grad.unique().tolist()) <= {0.0, 1.0}
    inside = augment(torch.ones(4, 1, 8, 8), padding=4, generator=torch.Generator().manual_seed(0))
    assert float(x.grad.sum()) == float(inside.sum()) > 0


@pytest.mark.parametrize("s", [28, 32, 64])
@pytest.mark.parametrize("nc", [1, 3])
def test_generator_shape_and_range(s, nc):
    torch.manual_seed(0)
    G = Generator(nz=16, img_size=s, nc=nc, ngf=8)
    with torch.no_grad():
        x = G(torch.randn(2, 16))
    assert x.shape == (2, nc, s, s)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_generator_default_layers_and_bad_size():
    G = Generator()
    assert G.l1.out_features == 128 * 8 * 8
    convs = [m for m in G.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.bias is not None) for c in convs] == \
        [(128, 128, False), (128, 64, False), (64, 3, True)]
    with pytest.raises(ConfigError):
        Generator(img_size=30)


def test_reinit_statistics_and_seed():
    G = Generator(nz=100, img_size=32, nc=3)
    reinit_generator(G, torch.Generator().manual_seed(0))
    w = torch.cat([m.weight.detach().flatten() for m in G.modules() if isinstance(m, (nn.Conv2d, nn.Linear))])
    assert abs(float(w.mean())) < 1e-3 and abs(float(w.std()) - 0.02) < 1e-3
    bn_w = torch.cat([m.weight.detach() for m in G.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(float(bn_w.mean()) - 1.0) < 0.01 and abs(float(bn_w.std()) - 0.02) < 0.005
    biases = [m.bias for m in G.modules() if getattr(m, "bias", None) is not None]
    assert all(float(b.detach().abs().max()) == 0.0 for b in biases)
    before = [p.clone() for p in G.parameters()]
    reinit_generator(G, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(before, G.parameters()))
