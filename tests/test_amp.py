"""Speed paths (ferd.toolkit.speed): bf16 autocast matches float32 within a stated tolerance; attacks and evaluation
stay float32; the speed switches are validated and keep config keys stable.

Tolerance. bf16 keeps 8 significant bits (relative rounding 2^-9 = 0.2% per operation); through a few conv
layers the rounding of activations and weights accumulates to about 1% of a logit. Each bf16 loss must lie
within 2% (relative) of its float32 value, and the student's bf16 gradient must point the same way (cosine
similarity > 0.95). Measured on these models (torch 2.14 CPU): losses within 0.15%, cosine 0.986, so the
bounds leave a margin of about 10x on the loss and catch a path that is not float32 where it must be (an
attack or a loss in bf16 moves these numbers by far more). The models are smoke-size and randomly
initialised, with the last layer scaled so that logits spread as a trained network's do. CPU autocast
supports bf16, so this runs without a GPU; tests/test_cuda.py repeats the check on CUDA.
"""
from __future__ import annotations

import os

import pytest
import torch

from ferd.config import make_config
from ferd.errors import ConfigError
from ferd.method.distill import Distiller
from ferd.method.generator import Generator
from ferd.method.losses import BNStatsLoss
from ferd.method.methods import run_key
from ferd.method.synthesis import ferd_round
from ferd.toolkit.artifacts import ArtifactStore
from ferd.toolkit.attacks import PGD, Clean
from ferd.toolkit.data import ImageSplit
from ferd.toolkit.evaluate import evaluate
from ferd.toolkit.models import create_model
from ferd.toolkit.speed import Autocast, TwoViews

REL_TOL = 0.02  # see the module docstring
COS_MIN = 0.95


def _sharpen(model: torch.nn.Module, scale: float = 10.0) -> torch.nn.Module:
    """Scale the last linear layer so logits spread over several units, as a trained network's do (at random
    init they are all near 0, where bf16 rounding of a logit is invisible and the test would prove nothing)."""
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(scale)
    return model


def _teacher(seed: int = 0) -> torch.nn.Module:
    """A random fmnist-cnn teacher with non-trivial BN running statistics (so L_bn is informative)."""
    torch.manual_seed(seed)
    t = _sharpen(create_model("fmnist-cnn", num_classes=10))
    with torch.no_grad():
        for m in t.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return t.eval()


def _close(a: float, b: float, rel: float = REL_TOL) -> bool:
    return abs(a - b) <= rel * max(abs(b), 1e-2)


def _round(teacher, student, G, amp: bool) -> dict[str, float]:
    torch.manual_seed(1)
    bn = BNStatsLoss(teacher)
    t, s = (Autocast(teacher, "cpu"), Autocast(student, "cpu")) if amp else (teacher, student)
    res = ferd_round(t, s, G, bn, torch.arange(16) % 10, nz=32, steps=1, lr_g=2e-3, lr_z=0.015,
                     weights=(5.0, 1.0, 1.0, 5.0), use_fae=True, ib_steps=5, ib_lr=0.1, ib_beta=0.3,
                     ib_noise="per_channel", ikl_T2=100.0, padding=2, device=torch.device("cpu"))
    bn.remove()
    assert res.x.dtype == torch.float32 and res.probe_x.dtype == torch.float32
    return res.parts


def test_generator_losses_bf16_match_float32():
    teacher = _teacher()
    torch.manual_seed(2)
    student = _sharpen(create_model("fmnist-resnet", num_classes=10))
    G = Generator(nz=32, img_size=28, nc=1)
    fp32 = _round(teacher, student, G, amp=False)
    bf16 = _round(teacher, student, G, amp=True)
    for k in ("gen_bn", "gen_adv", "gen_oh", "gen_total"):
        assert _close(bf16[k], fp32[k]), (k, bf16[k], fp32[k])
    # L_uni is a small KL (near 0 for a random teacher): compare it absolutely, in nats
    assert abs(bf16["gen_uni"] - fp32["gen_uni"]) < 0.01 + REL_TOL * abs(fp32["gen_uni"])


def _distiller(tmp_path, teacher, name: str, **overrides) -> Distiller:
    cfg = make_config("smoke", "ferd", overrides={"student": "fmnist-resnet", "batch_size": 16, **overrides})
    d = Distiller(cfg, teacher=teacher, store=ArtifactStore(tmp_path / name), progress=False)
    _sharpen(d.student)
    g = torch.Generator().manual_seed(3)
    d.pool.append(torch.rand(32, 1, 28, 28, generator=g), torch.arange(32) % 10)
    return d


def _student_step(d: Distiller) -> tuple[dict[str, float], torch.Tensor]:
    torch.manual_seed(4)
    parts = {k: float(v) for k, v in d.student_step(epoch=2, step=0).items()}
    grad = torch.cat([p.grad.flatten() for p in d.student.parameters()])
    return parts, grad


@pytest.mark.parametrize("switches", [{"amp": "bf16"}, {"amp": "bf16", "channels_last": True},
                                      {"channels_last": True, "fused_optim": True, "pool_on_device": True}])
def test_student_losses_match_float32(tmp_path, switches):
    teacher = _teacher()
    ref, g_ref = _student_step(_distiller(tmp_path, teacher, "fp32"))
    fast, g_fast = _student_step(_distiller(tmp_path, teacher, "fast", **switches))
    rel = REL_TOL if switches.get("amp") == "bf16" else 1e-4  # float32 paths differ only by summation order
    for k in ("student_loss", "student_clean", "student_adv"):
        assert _close(fast[k], ref[k], rel), (k, fast[k], ref[k])
    cos = torch.nn.functional.cosine_similarity(g_fast, g_ref, dim=0)
    assert cos > (COS_MIN if switches.get("amp") == "bf16" else 0.9999), float(cos)


def test_attacks_and_evaluation_stay_float32(tmp_path):
    """Under amp='bf16' only the student's train-mode loss passes are autocast; the UTAE attack (eval mode)
    and evaluation run in float32 on the raw float32 student."""
    d = _distiller(tmp_path, _teacher(), "bf16", amp="bf16")
    calls: list[tuple[bool, bool, torch.dtype]] = []

    def hook(module, inputs, output):
        calls.append((module.training, torch.is_autocast_enabled("cpu"), output.dtype))

    handle = d.student.register_forward_hook(hook)
    d.student_step(epoch=2, step=0)
    attack_calls = [c for c in calls if not c[0]]
    loss_calls = [c for c in calls if c[0]]
    assert len(attack_calls) == d.d.utae_steps and len(loss_calls) == 2
    assert all(not amp and dtype == torch.float32 for _, amp, dtype in attack_calls)
    assert all(amp and dtype == torch.bfloat16 for _, amp, dtype in loss_calls)
    assert all(p.dtype == torch.float32 for p in d.student.parameters())

    calls.clear()
    g = torch.Generator().manual_seed(5)
    split = ImageSplit(torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8, generator=g),
                       torch.arange(20) % 10, [str(c) for c in range(10)], "fashion_mnist")
    evaluate(d.student, split, {"clean": Clean(d.student), "pgd": PGD(d.student, 0.1, 0.025, 2)}, progress=False)
    handle.remove()
    assert calls and all(not amp and dtype == torch.float32 for _, amp, dtype in calls)


def test_wrappers_share_state_and_return_float32():
    model = create_model("fmnist-cnn", num_classes=10)
    wrapped = Autocast(model, "cpu")
    assert list(wrapped.parameters()) == list(model.parameters())
    wrapped.eval()
    assert not model.training
    x = torch.rand(2, 1, 28, 28)
    z = wrapped.features(x)
    assert z.dtype == torch.float32 and wrapped.head(z).dtype == torch.float32
    a, b = Autocast(TwoViews(model), "cpu")(x, x)
    assert a.dtype == b.dtype == torch.float32 and torch.allclose(a, b)


def test_speed_switches_in_profiles_and_keys():
    for profile, nhwc in (("smoke", False), ("cpu", True)):  # NHWC convolutions are faster on CPUs too
        d = make_config(profile).distill
        assert (d.amp, d.channels_last, d.compile, d.fused_optim, d.pool_on_device, d.distributed) == \
            ("off", nhwc, False, False, False, False)
    paper = make_config("paper", overrides={"device": "cpu"}).distill
    assert paper.amp == "bf16" and paper.channels_last and paper.fused_optim and not paper.compile
    with pytest.raises(ConfigError, match="distill.amp"):
        make_config(overrides={"amp": "fp16"})
    with pytest.raises(ConfigError, match="distill.distributed"):
        make_config(preset="dfhl", overrides={"distributed": True})
    base = make_config()
    # execution details stay out of the key (like the device); bf16 and sharding change results and enter it
    for k in ("channels_last", "compile", "fused_optim", "pool_on_device"):
        flipped = not getattr(base.distill, k)
        assert run_key(make_config(overrides={k: flipped})) == run_key(base)
    assert run_key(make_config(overrides={"amp": "bf16"})) != run_key(base)
    assert run_key(make_config(overrides={"distributed": True})) != run_key(base)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("FERD_TEST_COMPILE"), reason="compiling takes minutes on 2 CPU cores; "
                    "set FERD_TEST_COMPILE=1 to run it (gpu_check.sh times --compile on CUDA instead)")
def test_compiled_student_matches_eager(tmp_path):
    """torch.compile of the student (opt-in, needs a C++ compiler on CPU) gives the eager losses."""
    teacher = _teacher()
    ref, _ = _student_step(_distiller(tmp_path, teacher, "eager"))
    fast, _ = _student_step(_distiller(tmp_path, teacher, "compiled", compile=True))
    for k in ("student_clean", "student_adv"):
        assert _close(fast[k], ref[k], 1e-4), (k, fast[k], ref[k])
