"""Multi-process distillation with torch.distributed: one process per GPU, the same result as one process.

Switch it on with `distill.distributed = true` and launch with torchrun (one process per GPU, NCCL on CUDA,
gloo on CPU):

    torchrun --standalone --nproc_per_node 4 -m ferd distill --profile paper --preset ferd \\
        --set distributed=True

How the loop is split (`ferd.method.distill.Distiller` calls the helpers of `Comm`):
- Every rank seeds the global RNG with the same seed, so the draws that must agree need no communication:
  labels, latents z and the generator re-initialisation (spec 5.2), the pool's shuffled order (spec 5.5).
- Generation: each rank optimises the slice `rank::world_size` of the SAME label vector and latents; the
  generator's gradients are averaged over ranks before each Adam step (G stays identical on every rank), and
  the lowest-loss step is chosen on the rank-averaged loss. The kept batches are all-gathered back into the
  label order, so every rank holds the same pool, in the order a single process would have built it.
- Probe: each rank attacks its slice of the probe batch; the per-class margin sums and counts are
  all-reduced, so D and the class weights p are identical everywhere (spec 5.6).
- Student: every rank draws the same pool batch of B and trains on its slice; DistributedDataParallel
  averages the gradients, so the update is that of a batch of B (spec 5.9).
- Rank 0 alone writes checkpoints and artifacts, shows progress bars and tracks accuracy.
Differences from one process (hence not bit-equal, see tests/test_distributed.py): BatchNorm batch statistics
(generator, the teacher's BN loss, the student in train mode) are per slice of B / world_size samples, and the
crop/flip and attack-start draws differ. `distill.batch_size` must be divisible by the world size. The teacher
is trained by rank 0 while the others wait on its file lock; train it once beforehand
(`python -m ferd train-teacher --profile paper`) to keep GPUs from idling.

Independent jobs in parallel (sweeps over gamma, tau, seeds, ablation presets) need no torch.distributed:
run one process per GPU; each run has its own config hash, directory and lock in the artifact store.

    # one run per GPU on one machine
    i=0; for g in 0.1 0.3 0.5 0.7; do
        CUDA_VISIBLE_DEVICES=$i nohup python -m ferd distill --profile paper --set gamma=$g > gamma_$g.log 2>&1 &
        i=$((i+1)); done; wait

    # Slurm array (sbatch sweep.sh): one task per preset x seed, one GPU each
    #SBATCH --array=0-14 --gres=gpu:1 --cpus-per-task=8 --time=48:00:00
    presets=(ferd ferd_no_reweight ferd_no_fae ferd_no_utae ferd_no_fae_utae)
    python -m ferd distill --profile paper --preset ${presets[$((SLURM_ARRAY_TASK_ID % 5))]} \\
        --set seed=$((SLURM_ARRAY_TASK_ID / 5))
"""
from __future__ import annotations

import atexit
import dataclasses
import os
import warnings
from typing import Any, Iterable

import torch
import torch.distributed as dist
from torch import nn

from ferd.config import Config, resolve_device
from ferd.errors import ConfigError
from ferd.method.reweighting import class_sums, vulnerability_from_sums

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """True when the torchrun environment variables (RANK, WORLD_SIZE, ...) are set."""
    return all(k in os.environ for k in _ENV)


class Comm:
    """This process's place in the process group and the collectives the loop needs.

    Args:
        device: the device this rank trains on (cuda:LOCAL_RANK with NCCL, cpu with gloo).
    """

    def __init__(self, device: torch.device):
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))
        self.device = device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes artifacts and shows progress."""
        return self.rank == 0

    def __repr__(self) -> str:
        return f"Comm(rank={self.rank}, world_size={self.world_size}, device={self.device})"

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.world_size:
            raise ConfigError("distill.batch_size", batch_size,
                              f"a multiple of the world size {self.world_size} (each rank takes B / world_size)")

    # ------------------------------------------------------------------ slicing and gathering
    def shard(self, t: torch.Tensor) -> torch.Tensor:
        """This rank's slice `t[rank::world_size]` along dim 0 (strided, so a sorted label vector stays
        balanced over classes on every rank)."""
        return t[self.rank::self.world_size]

    def gather_shards(self, t: torch.Tensor) -> torch.Tensor:
        """Inverse of `shard`: all ranks' slices [B / W, ...] back into one tensor [B, ...] in the original order."""
        parts = [torch.empty_like(t) for _ in range(self.world_size)]
        dist.all_gather(parts, t.contiguous())
        return torch.stack(parts, dim=1).flatten(0, 1)  # [B/W, W, ...] -> [B, ...]: row i*W + r = shard r, row i

    # ------------------------------------------------------------------ reductions
    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """Average of `t` over ranks (a new tensor; no host synchronisation on NCCL)."""
        out = t.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out / self.world_size

    def mean_dict(self, values: dict[str, float]) -> dict[str, float]:
        """Rank averages of scalar logs (the generator's loss parts)."""
        if not values:
            return values
        vec = self.mean(torch.tensor(list(values.values()), dtype=torch.float64, device=self.device))
        return dict(zip(values, vec.tolist()))

    def average_grads(self, params: Iterable[nn.Parameter]) -> None:
        """Average `.grad` over ranks in place (the generator's parameters, before each Adam step)."""
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.flatten() for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset: offset + g.numel()].view_as(g))
            offset += g.numel()

    def vulnerability(self, m: torch.Tensor, y: torch.Tensor, num_classes: int, absent_policy: str = "zero",
                      previous: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
        """Class vulnerability D over all ranks' probe slices, and the mean margin (spec 5.6).

        All-reduces the per-class sums of -m and the counts, then divides as `ferd.method.reweighting.vulnerability`
        does; absent classes get 0 or `previous[c]` ("carry_forward").
        Shapes: m, y [B / W] -> D [C].
        """
        sums, counts = class_sums(m.double(), y, num_classes)
        both = torch.stack([sums, counts.double()])  # [2, C]
        dist.all_reduce(both, op=dist.ReduceOp.SUM)
        sums, counts = both
        margin_mean = float(-sums.sum() / counts.sum().clamp_min(1))
        return vulnerability_from_sums(sums, counts, absent_policy, previous).to(m.dtype), margin_mean

    # ------------------------------------------------------------------ models
    def wrap_ddp(self, module: nn.Module) -> nn.Module:
        """DistributedDataParallel around the student's training forward (gradients averaged in backward)."""
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def gather_round(self, res: Any, y: torch.Tensor) -> Any:
        """A generation round's result over all ranks: kept and probe batches in the order of the full label
        vector `y` [B], loss parts averaged (every rank then appends the same batch to its pool)."""
        return dataclasses.replace(res, x=self.gather_shards(res.x), y=y.to(res.y.device),
                                   probe_x=self.gather_shards(res.probe_x), parts=self.mean_dict(res.parts))

    def barrier(self) -> None:
        dist.barrier()


def init_from_env(device: str = "auto") -> Comm:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).

    NCCL and cuda:LOCAL_RANK when `device` resolves to CUDA, gloo on the CPU otherwise. Idempotent.
    """
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
        raise ConfigError("distill.distributed", True, f"a launch by torchrun (missing {', '.join(missing)})")
    local_rank = int(os.environ["LOCAL_RANK"])
    use_cuda = resolve_device(device).startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", init_method="env://")
        atexit.register(cleanup)  # the CLI returns without tearing the group down
    return Comm(torch.device("cuda", local_rank) if use_cuda else torch.device("cpu"))


def from_config(cfg: Config) -> Comm | None:
    """The `Comm` of a `distill.distributed` run, or None for one process.

    Without torchrun's environment (a notebook reading a finished run) the run is one process, with a warning.
    """
    if not cfg.distill.distributed:
        return None
    if not launched_by_torchrun():
        warnings.warn("distill.distributed is on but this process was not started by torchrun: running as one "
                      "process", stacklevel=2)
        return None
    comm = init_from_env(cfg.device)
    comm.check_batch(cfg.distill.batch_size)
    return comm


def cleanup() -> None:
    """Leave the process group (end of a torchrun script)."""
    if dist.is_initialized():
        dist.destroy_process_group()
