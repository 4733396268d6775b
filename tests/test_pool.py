"""Tests of ferd.method.pool: growth, shuffled passes, label frequencies, dtypes, resume (spec 5.5; section 10 item 10).

Run: OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m pytest tests/test_pool.py -q
"""
from __future__ import annotations

import pytest
import torch

from ferd.errors import ConfigError
from ferd.method.pool import SyntheticPool


def _indexed_batch(start: int, b: int, label: int | torch.Tensor = 0):
    """Images whose every pixel holds the sample's index, so draws can be identified."""
    idx = torch.arange(start, start + b, dtype=torch.float32)
    x = (idx / 1000.0).view(b, 1, 1, 1).expand(b, 1, 2, 2).clone()
    y = label if torch.is_tensor(label) else torch.full((b,), label)
    return x, y


def _ids(x: torch.Tensor) -> list[int]:
    return [round(v * 1000) for v in x[:, 0, 0, 0].tolist()]


def test_pool_growth_and_passes_cover_every_sample():
    pool = SyntheticPool(3)
    for e in range(3):
        pool.append(*_indexed_batch(4 * e, 4, label=e))
        assert len(pool) == 4 * (e + 1)
    assert pool.label_counts().tolist() == [4, 4, 4]
    g = torch.Generator().manual_seed(0)
    for _ in range(2):  # two passes of three full batches each
        seen = sum((_ids(pool.next_batch(4, g)[0]) for _ in range(3)), [])
        assert sorted(seen) == list(range(12))
    # a batch crossing a pass boundary: 10 samples, batch 4
    pool2 = SyntheticPool(3)
    pool2.append(*_indexed_batch(0, 10))
    draws = sum((_ids(pool2.next_batch(4, g)[0]) for _ in range(5)), [])
    assert sorted(draws[:10]) == list(range(10)) and sorted(draws[10:]) == list(range(10))


def test_pool_append_mid_pass_and_new_pass():
    pool, g = SyntheticPool(2), torch.Generator().manual_seed(1)
    pool.append(*_indexed_batch(0, 4))
    first = _ids(pool.next_batch(2, g)[0])
    pool.append(*_indexed_batch(4, 4, label=1))
    rest = _ids(pool.next_batch(2, g)[0])
    assert sorted(first + rest) == [0, 1, 2, 3]  # the running pass is finished first
    assert sorted(sum((_ids(pool.next_batch(2, g)[0]) for _ in range(4)), [])) == list(range(8))
    pool.next_batch(2, g)
    pool.new_pass()
    assert sorted(sum((_ids(pool.next_batch(4, g)[0]) for _ in range(2)), [])) == list(range(8))


def test_pool_label_frequencies_match_p():
    p = torch.tensor([0.1, 0.4, 0.2, 0.3])
    g = torch.Generator().manual_seed(0)
    pool, B, epochs = SyntheticPool(4), 64, 40
    for _ in range(epochs):
        y = torch.multinomial(p, B, replacement=True, generator=g).sort().values
        pool.append(torch.rand(B, 1, 2, 2, generator=g), y)
    n = B * epochs
    counts = pool.label_counts().double()
    chi2 = float(((counts - n * p) ** 2 / (n * p)).sum())
    assert chi2 < 18.5  # chi-square, 3 dof: p-value ~ 3e-4
    drawn = torch.cat([pool.next_batch(B, g)[1] for _ in range(epochs)])  # exactly one pass
    assert torch.equal(torch.bincount(drawn, minlength=4).double(), counts)


@pytest.mark.parametrize("dtype,tol", [("float32", 0.0), ("float16", 1e-3), ("uint8", 0.5 / 255 + 1e-7)])
def test_pool_dtypes_return_float32(dtype, tol):
    pool = SyntheticPool(2, dtype=dtype)
    x = torch.rand(5, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    pool.append(x, torch.tensor([0, 1, 0, 1, 1]))
    xs, ys = pool.tensors()
    assert xs.dtype == torch.float32 and float((xs - x).abs().max()) <= tol
    xb, yb = pool.next_batch(3, torch.Generator().manual_seed(0))
    assert xb.dtype == torch.float32 and xb.shape == (3, 3, 4, 4) and yb.dtype == torch.int64
    with pytest.raises(ConfigError):
        SyntheticPool(2, dtype="bfloat16")


def test_pool_state_dict_round_trip_reproduces_batches():
    pool, g = SyntheticPool(3, dtype="uint8"), torch.Generator().manual_seed(0)
    for e in range(3):
        pool.append(torch.rand(4, 1, 2, 2, generator=g), torch.full((4,), e))
    for _ in range(2):
        pool.next_batch(3, g)
    state, g_state = pool.state_dict(), g.get_state()
    expected = [pool.next_batch(3, g) for _ in range(6)]
    resumed, g2 = SyntheticPool(3, dtype="uint8"), torch.Generator()
    resumed.load_state_dict(state)
    g2.set_state(g_state)
    for xe, ye in expected:
        xr, yr = resumed.next_batch(3, g2)
        assert torch.equal(xe, xr) and torch.equal(ye, yr)
    assert len(resumed) == 12
    with pytest.raises(ConfigError):
        SyntheticPool(3, dtype="float32").load_state_dict(state)
