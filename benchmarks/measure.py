"""Measuring on CPU or CUDA: synchronised wall time, peak memory, FLOPs, host syncs, the conv ceiling.

Used by bench_steps.py; see benchmarks/README.md for what each number means.
"""
from __future__ import annotations

import math
import resource
import statistics
import time
import warnings
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device: torch.device) -> float:
    """CUDA: peak allocated since the last reset. CPU: the process's peak resident set (never reset)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        return float("nan")


def measure(fn: Callable[[Any], Any], setup: Callable[[], Any] | None, device: torch.device, warmup: int,
            repeats: int, flops: list[int] | None = None) -> list[float]:
    """Wall seconds of `fn(setup())` (setup untimed), synchronised, after `warmup` untimed runs.

    With a list `flops`, the first untimed run (an extra one when warmup = 0) counts FLOPs into it.
    """
    for i in range(max(warmup, 1 if flops is not None else 0)):
        if flops is not None and i == 0:
            flops.append(count_flops(fn, setup))
        else:
            fn(setup() if setup else None)
    sync(device)
    reset_peak(device)
    times = []
    for _ in range(repeats):
        state = setup() if setup else None
        sync(device)
        t0 = time.perf_counter()
        fn(state)
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


class FlopCount(TorchDispatchMode):
    """Sum of FLOPs of matmuls and convolutions (forward and backward), by `FlopCounterMode`'s own formulas.

    `FlopCounterMode` itself cannot run an attack: its module tracker fails inside `torch.autograd.grad` on a
    leaf input ("A leaf node was passed to _will_engine_execute_node"), so we apply its registry here.
    """

    registry = FlopCounterMode(display=False).flop_registry

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = self.registry.get(func._overloadpacket)
        if count is not None:
            self.total += int(count(*args, **kwargs, out_val=out))
        return out


def count_flops(fn: Callable[[Any], Any], setup: Callable[[], Any] | None) -> int:
    state = setup() if setup else None
    with FlopCount() as counter:
        fn(state)
    return counter.total


def count_syncs(fn: Callable[[Any], Any], setup: Callable[[], Any] | None, device: torch.device) -> int | None:
    """Host-device synchronisations inside one run (CUDA only, via torch's sync debug mode)."""
    if device.type != "cuda":
        return None
    state = setup() if setup else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn(state)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def conv_ceiling(device: torch.device, dtype: torch.dtype, batch: int, channels: int, side: int,
                 channels_last: bool, repeats: int) -> dict[str, Any]:
    """Dense 3x3 conv2d throughput, FLOPs = 2 * B * C_out * H * W * C_in * 9 (stride 1, same padding)."""
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(batch, channels, side, side, device=device, generator=g).to(dtype)
    w = torch.randn(channels, channels, 3, 3, device=device, generator=g).to(dtype) / math.sqrt(9 * channels)
    if channels_last:
        x, w = x.to(memory_format=torch.channels_last), w.to(memory_format=torch.channels_last)
    flops = 2 * batch * channels * side * side * channels * 9
    reps = max(repeats, 3) * (5 if device.type == "cuda" else 1)
    with torch.no_grad():
        times = measure(lambda _: F.conv2d(x, w, padding=1), None, device, warmup=2, repeats=reps)
    med = statistics.median(times)
    return {"dtype": str(dtype).replace("torch.", ""), "shape": [batch, channels, side, side], "kernel": 3,
            "flops": flops, "median_s": med, "tflops": flops / med / 1e12}
