"""The loop and evaluation on a CUDA device (skipped without one; benchmarks/gpu_check.sh runs it on a lent GPU).

No dataset is read: the teacher is randomly initialised and the tracking split is random images, so the
check runs on a fresh machine. The bf16 tolerance is test_amp.py's (its docstring says why).
"""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from ferd.config import make_config
from ferd.method.distill import Distiller
from ferd.method.losses import BNStatsLoss
from ferd.method.synthesis import ferd_round
from ferd.toolkit.artifacts import ArtifactStore
from ferd.toolkit.attacks import FGSM, PGD, Clean, CWInf
from ferd.toolkit.data import ImageSplit
from ferd.toolkit.evaluate import evaluate
from ferd.toolkit.models import create_model
from ferd.toolkit.speed import Autocast

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

FAST = {"amp": "bf16", "channels_last": True, "fused_optim": True, "pool_on_device": True}
REL_TOL = 0.02


def _split(n: int = 40, seed: int = 0) -> ImageSplit:
    g = torch.Generator().manual_seed(seed)
    return ImageSplit(torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g),
                      torch.arange(n) % 10, [str(c) for c in range(10)], "fashion_mnist")


def _teacher() -> torch.nn.Module:
    torch.manual_seed(0)
    t = create_model("fmnist-cnn", num_classes=10)
    with torch.no_grad():
        last = [m for m in t.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.mul_(10.0)  # spread logits as a trained net's (see test_amp.py)
    return t.eval()


def _distiller(tmp_path, name: str, **overrides) -> Distiller:
    cfg = make_config("smoke", "ferd", overrides={"student": "fmnist-resnet", "device": "cuda", **overrides})
    d = Distiller(cfg, teacher=_teacher(), store=ArtifactStore(tmp_path / name), progress=False)
    d._tracking = _split()  # random images instead of the Fashion-MNIST test subset
    return d


@pytest.mark.parametrize("switches", [{}, FAST], ids=["float32", "fast"])
def test_smoke_run_on_cuda(tmp_path, switches):
    res = _distiller(tmp_path, "run", **switches).run()
    h = res.history
    assert list(h["pool_size"]) == [32, 64, 96]
    assert all(math.isfinite(v) for v in h["gen_total"]) and h["student_loss"].iloc[1:].notna().all()
    assert "acc_clean" in h and next(res.student.parameters()).is_cuda
    assert all(p.dtype == torch.float32 for p in res.student.parameters())


def test_bf16_student_step_matches_float32_on_cuda(tmp_path):
    def step(d: Distiller) -> dict[str, float]:
        g = torch.Generator().manual_seed(3)
        d.pool.append(torch.rand(32, 1, 28, 28, generator=g), torch.arange(32) % 10)
        torch.manual_seed(4)
        return {k: float(v) for k, v in d.student_step(epoch=2, step=0).items()}

    ref, fast = step(_distiller(tmp_path, "a")), step(_distiller(tmp_path, "b", **FAST))
    for k in ref:
        assert abs(fast[k] - ref[k]) <= REL_TOL * abs(ref[k]), (k, fast[k], ref[k])


def _syncs(fn) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def test_no_host_syncs_per_generator_step(tmp_path):
    """A round of 4 steps synchronises as often as a round of 2: nothing inside a step waits for the GPU."""
    d = _distiller(tmp_path, "sync", **FAST)
    bn = BNStatsLoss(d.teacher)
    y = torch.arange(32) % 10

    def round_of(steps: int) -> int:
        return _syncs(lambda: ferd_round(Autocast(d.teacher, "cuda"), Autocast(d.student, "cuda"), d.G, bn, y,
                                         nz=100, steps=steps, lr_g=2e-3, lr_z=0.015, weights=(5.0, 1.0, 1.0, 5.0),
                                         use_fae=True, ib_steps=5, ib_lr=0.1, ib_beta=0.3, ib_noise="per_channel",
                                         ikl_T2=100.0, padding=2, device=d.device))

    round_of(1)  # warm-up
    assert round_of(4) == round_of(2)


def test_student_step_syncs_only_where_known(tmp_path):
    """Known host synchronisations of one student step, none of them per attack step: the pool copies the
    batch's indices to the device (ferd.method.pool, a pageable host-to-device copy), and `Attack.__call__` reads
    x.min() and x.max() back to check x in [0, 1] (ferd.toolkit.attacks). Anything more is a regression."""
    d = _distiller(tmp_path, "sync2", **FAST)
    d.pool.append(torch.rand(64, 1, 28, 28), torch.arange(64) % 10)
    d.student_step(2, 0)
    assert _syncs(lambda: d.student_step(2, 1)) <= 3


def test_evaluation_on_cuda_is_float32():
    model = create_model("fmnist-resnet", num_classes=10).eval()
    dtypes: list[torch.dtype] = []
    model.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    attacks = {"clean": Clean(model), "fgsm": FGSM(model, 0.1), "pgd": PGD(model, 0.1, 0.025, 3),
               "cw": CWInf(model, 0.1, 0.025, 3)}
    df = evaluate(model, _split(), attacks, device="cuda", progress=False)
    assert set(df["attack"]) == set(attacks) and df["count"].sum() == 4 * 40
    assert dtypes and all(t == torch.float32 for t in dtypes)
    assert not next(model.parameters()).is_cuda  # evaluate restores the model's device
