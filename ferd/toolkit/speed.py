"""Speed paths of the distillation loop: bf16 autocast, channels_last, torch.compile, fused optimisers.

These are the `DistillConfig` switches that change how fast the loop runs, not what it computes (spec 5.11):

    amp = "bf16"          teacher and student forwards/backwards of the generator step, and the student's
                          two loss forwards and backward, run under `torch.autocast(bfloat16)`; every wrapper
                          returns float32, so all losses are computed in float32. The attacks (UTAE, the
                          PGD-20 probe) and the teacher's target logits run in float32 on the raw modules: a
                          sign attack through bf16 gradients is weaker. Evaluation never sees a wrapper.
                          The generator G itself stays float32 (cheap; its output is what the pool stores).
    channels_last = True  teacher, student and generator weights in NHWC memory format (faster convs on GPUs,
                          and 13-35% faster on this 2-core CPU: on in the `cpu` profile too).
    compile = True        `torch.compile` of the student forward used by the attack and by the loss.
    fused_optim = True    fused SGD for the student on CUDA (one kernel per step instead of one per tensor).
    pool_on_device = True the synthetic pool lives on the training device (no host-to-device copy per batch).

`FastPaths(cfg, teacher, student, G, device, comm)` builds the modules the loop calls; with every switch off
they are the raw modules and the loop computes exactly what it did before these switches existed.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ferd.errors import ConfigError

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16}


def _to_float(out: Any) -> Any:
    """Cast tensor outputs (or tuples of them) back to float32, so losses never see bf16."""
    if torch.is_tensor(out):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, tuple):
        return tuple(_to_float(o) for o in out)
    return out


class Autocast(nn.Module):
    """Run a FERD model's `forward`, `features` and `head` under autocast; return float32 tensors.

    Args:
        model: any module with forward (and, for teachers, features/head, spec 4.2).
        device_type: "cuda" or "cpu" (CPU bf16 autocast is what the tests use).
        dtype: the autocast dtype (bfloat16).
    Parameters, buffers, train/eval mode and hooks are the wrapped model's own: the wrapper holds no state.
    """

    def __init__(self, model: nn.Module, device_type: str, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.model, self.device_type, self.dtype = model, device_type, dtype

    def _run(self, fn: Any, *args: Any) -> Any:
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = fn(*args)
        return _to_float(out)

    def forward(self, *args: Any) -> Any:
        return self._run(self.model, *args)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(self.model.features, x)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self._run(self.model.head, z)


class TwoViews(nn.Module):
    """`forward(x_f, x_u) -> (f(x_f), f(x_u))`: the student loss's two train-mode passes in one call.

    They stay two passes (each with its own BatchNorm batch statistics, spec 5.9), but DistributedDataParallel
    sees one forward per backward, which its gradient all-reduce expects.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x_f: torch.Tensor, x_u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(x_f), self.model(x_u)


def autocast_dtype(amp: str) -> torch.dtype | None:
    """bfloat16 for amp="bf16", None for "off"; anything else raises ConfigError."""
    if amp not in AMP_DTYPES:
        raise ConfigError("distill.amp", amp, tuple(AMP_DTYPES))
    return AMP_DTYPES[amp]


def student_optimizer_kwargs(fused: bool, device: torch.device) -> dict[str, Any]:
    """Extra keyword arguments of the student's SGD: `fused=True` on CUDA when asked, else the defaults
    (torch already uses the multi-tensor `foreach` implementation on CUDA)."""
    return {"fused": True} if fused and device.type == "cuda" else {}


class FastPaths:
    """The modules the loop calls, built once from the speed switches (see the module docstring).

    Attributes:
        teacher_gen, student_gen: teacher/student for the generator step (autocast wrappers or raw).
        student_attacked: the float32 student the UTAE attack differentiates (compiled or raw).
        student_views: `(x_f, x_u) -> (s_clean, s_adv)` for the student loss (autocast, DDP where distributed).
    """

    def __init__(self, d: Any, teacher: nn.Module, student: nn.Module, G: nn.Module | None, device: torch.device,
                 comm: Any = None):
        dtype = autocast_dtype(d.amp)
        if d.channels_last:
            for m in (teacher, student, G):
                if m is None:  # methods without a generator (RSLAD)
                    continue
                m.to(memory_format=torch.channels_last)
        fast_student = torch.compile(student) if d.compile else student
        if dtype is None:
            self.teacher_gen, self.student_gen = teacher, student
            views: nn.Module = TwoViews(fast_student)
        else:
            self.teacher_gen = Autocast(teacher, device.type, dtype)
            self.student_gen = Autocast(student, device.type, dtype)
            views = Autocast(TwoViews(fast_student), device.type, dtype)
        self.student_attacked = fast_student
        self.student_views = comm.wrap_ddp(views) if comm is not None else views
