"""Time the pieces of FERD's loop (spec 5.9, 5.11) on random inputs and randomly initialised networks.

    python benchmarks/bench_steps.py --profile smoke                     # seconds, CPU
    python benchmarks/bench_steps.py --profile cpu --repeats 3
    python benchmarks/bench_steps.py --profile paper --device cpu        # WRN-34-10 -> RN-18 / MN-V2, batch 2
    python benchmarks/bench_steps.py --profile paper --device cuda --out $OUT/bench_paper.json

For each student: one generator step split into its parts (teacher forward + BN loss, IB fit, uniformity
term, student forward + adversarial term, backward + Adam step) and whole (`ferd_round` per step), one student
step split (teacher target, UTAE attack, update) and whole (`Distiller.student_step`), the class-weight probe
(PGD on the teacher), and evaluation per attack on one batch. Each piece: warm-up runs, then the median of
`--repeats` timed runs; images/s; FLOPs counted by `torch.utils.flop_counter`'s formulas; the share of
the dense-convolution throughput measured in the same run (a conv2d of a representative shape, FLOPs computed
analytically); peak memory. No dataset is read. benchmarks/README.md explains the columns and the JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from measure import conv_ceiling, count_syncs, measure, peak_mb, rss_mb  # noqa: E402  (benchmarks/ is on sys.path)
from pieces import Piece, eval_pieces, floor_flops, forward_flops, generator_pieces, probe_piece, student_pieces  # noqa: E402

from ferd.config import make_config, resolve_device  # noqa: E402
from ferd.method.distill import Distiller  # noqa: E402
from ferd.toolkit.artifacts import ArtifactStore  # noqa: E402
from ferd.toolkit.models import create_model  # noqa: E402

# representative dense conv of each profile's teacher: (batch is the run's), channels, side
PAPER_CPU_BATCH = 2  # the paper networks on a CPU: a tiny batch, so the script ends in minutes
CEILING_CONV = {"smoke": (64, 14), "cpu": (64, 14), "paper": (320, 16)}  # fmnist-cnn stage 2; WRN-34-10 stage 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="smoke", choices=["smoke", "cpu", "paper"])
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs per piece (default 10 on CUDA, 3 on CPU, 2 for paper on CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 1 on CPU, 3 on CUDA)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/steps_<profile>_<device>.json)")
    p.add_argument("--student", default=None, help="student(s), comma-separated (paper default: resnet18,mobilenetv2)")
    p.add_argument("--teacher", default=None, help="teacher architecture (default: the profile's)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: the profile's; 2 for paper on CPU)")
    p.add_argument("--eval-batch", type=int, default=None, help="evaluation batch (default: min(batch, 256))")
    p.add_argument("--gen-steps", type=int, default=None, help="ferd_round steps timed per round (default 2 CPU, 5 CUDA)")
    p.add_argument("--max-attack-steps", type=int, default=None,
                   help="cap the probe and evaluation attacks' steps and extrapolate linearly (paper on CPU: 2)")
    p.add_argument("--amp", default=None, choices=["off", "bf16"], help="default: the profile's on CUDA, off on CPU")
    p.add_argument("--channels-last", default=None, action=argparse.BooleanOptionalAction)
    p.add_argument("--compile", default=None, action=argparse.BooleanOptionalAction)
    p.add_argument("--cudnn-benchmark", action="store_true", help="cudnn.benchmark on (the loop keeps it off, spec 5.10)")
    p.add_argument("--aa", action="store_true", help="also time AutoAttack (slow)")
    p.add_argument("--skip", default="", help="comma-separated groups to skip: gen,student,probe,eval")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------- measuring


# ---------------------------------------------------------------------------------------------- main
def build(args: argparse.Namespace, device: torch.device, student: str) -> tuple[Distiller, Any]:
    on_cpu = device.type == "cpu"
    base = make_config(args.profile, overrides={"device": str(device)})
    over: dict[str, Any] = {"device": str(device), "student": student}
    if args.batch:
        over["batch_size"] = args.batch
    elif args.profile == "paper" and on_cpu:
        over["batch_size"] = PAPER_CPU_BATCH
    over["amp"] = args.amp or ("off" if on_cpu else base.distill.amp)
    over["channels_last"] = args.channels_last if args.channels_last is not None else (
        False if on_cpu else base.distill.channels_last)
    if args.compile is not None:
        over["compile"] = args.compile
    cfg = make_config(args.profile, overrides=over)
    teacher = create_model(args.teacher or cfg.teacher.arch, num_classes=cfg.num_classes)
    d = Distiller(cfg, teacher=teacher, store=ArtifactStore(tempfile.mkdtemp(prefix="ferd-bench-")), progress=False)
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
    g = torch.Generator().manual_seed(0)
    B = cfg.distill.batch_size
    d.pool.append(torch.rand(4 * B, d.nc, d.img_size, d.img_size, generator=g), torch.arange(4 * B) % d.C)
    return d, cfg


def run_student(args: argparse.Namespace, device: torch.device, student: str, warmup: int, repeats: int,
                ceilings: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    d, cfg = build(args, device, student)
    dd = d.d
    on_cpu = device.type == "cpu"
    cap = args.max_attack_steps if args.max_attack_steps is not None else (2 if args.profile == "paper" and on_cpu else None)
    skip = set(filter(None, args.skip.split(",")))
    fwd = forward_flops(d)
    floors = floor_flops(fwd, dd)
    n_g_full = dd.n_g  # generator_pieces times rounds of fewer steps
    rows: list[dict[str, Any]] = []

    def record(pieces: list[Piece]) -> None:
        for pc in pieces:
            print(f"  timing {student}: {pc.name}", file=sys.stderr, flush=True)
            counted: list[int] = []
            times = measure(pc.fn, pc.setup, device, warmup, repeats, None if dd.compile else counted)
            flops = counted[0] if counted else None  # not counted through torch.compile
            syncs = count_syncs(pc.fn, pc.setup, device) if pc.name in ("gen.step", "student.step") else None
            med = statistics.median(times) * pc.scale
            ceiling = ceilings.get(pc.precision) or ceilings["float32"]
            tflops = flops * pc.scale / med / 1e12 if flops else None
            rows.append({"student": student, "piece": pc.name, "group": pc.group, "precision": pc.precision,
                         "images": pc.images, "median_s": med, "min_s": min(times) * pc.scale,
                         "times_s": [t * pc.scale for t in times], "images_per_s": pc.images / med if pc.images else None,
                         "flops": flops * pc.scale if flops else None, "tflops": tflops,
                         "share_of_ceiling": tflops / ceiling["tflops"] if tflops else None,
                         "peak_mem_mb": peak_mb(device), "rss_mb": rss_mb() if on_cpu else None,
                         "host_syncs": syncs, "scaled": pc.scale != 1.0, "note": pc.note})

    if "gen" not in skip:
        pieces, frozen_ctx = generator_pieces(d, args.gen_steps or (2 if on_cpu else 5), dd.amp)
        try:
            record(pieces)
        finally:
            frozen_ctx.__exit__(None, None, None)
    if "student" not in skip:
        record(student_pieces(d, dd.amp))
    if "probe" not in skip:
        record(probe_piece(d, cap))
    if "eval" not in skip:
        record(eval_pieces(d, cfg, args.eval_batch or min(dd.batch_size, 256), args.aa, cap))
    by = {r["piece"]: r for r in rows}
    est: dict[str, Any] = {"forward_flops": fwd, "floor_flops": floors}
    probe = next((r for r in rows if r["group"] == "probe"), None)
    if "gen.step" in by and "student.step" in by and probe:
        gen, stu = by["gen.step"]["median_s"], by["student.step"]["median_s"]
        epoch_gen = n_g_full * gen + probe["median_s"]
        epoch_full = epoch_gen + dd.n_s * stu
        run_s = dd.warmup * epoch_gen + (dd.epochs - dd.warmup) * epoch_full
        est.update({"n_g": n_g_full, "n_s": dd.n_s, "epochs": dd.epochs, "warmup": dd.warmup,
                    "batch_size": dd.batch_size, "generation_epoch_s": epoch_gen, "full_epoch_s": epoch_full,
                    "run_h": run_s / 3600,
                    # the generator step at its precision; the student step and probe are attack-bound: float32
                    "floor_s": {k: v / (ceilings[by["gen.step"]["precision"] if k == "gen.step" else "float32"]
                                        ["tflops"] * 1e12) for k, v in floors.items()}})
    return rows, est


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = torch.device(resolve_device(args.device))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    on_cpu = device.type == "cpu"
    warmup = args.warmup if args.warmup is not None else (1 if on_cpu else 3)
    paper_cpu = args.profile == "paper" and on_cpu
    repeats = args.repeats if args.repeats is not None else (10 if not on_cpu else 2 if paper_cpu else 3)
    cfg0 = make_config(args.profile, overrides={"device": str(device)})
    students = (args.student or ("resnet18,mobilenetv2" if args.profile == "paper" else cfg0.student)).split(",")
    batch = args.batch or (PAPER_CPU_BATCH if paper_cpu else cfg0.distill.batch_size)
    amp = args.amp or ("off" if on_cpu else cfg0.distill.amp)
    channels_last = args.channels_last if args.channels_last is not None else (
        not on_cpu and cfg0.distill.channels_last)
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
    else:  # what Distiller sets (seed_everything, spec 5.10), so the ceiling runs under the loop's settings
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    ch, side = CEILING_CONV[args.profile]
    ceilings = {"float32": conv_ceiling(device, torch.float32, batch, ch, side, channels_last, repeats)}
    if amp == "bf16":
        ceilings["bfloat16"] = conv_ceiling(device, torch.bfloat16, batch, ch, side, channels_last, repeats)
    rows, estimates = [], {}
    for student in students:
        r, e = run_student(args, device, student, warmup, repeats, ceilings)
        rows += r
        estimates[student] = e
    meta = {"profile": args.profile, "device": str(device), "device_name": torch.cuda.get_device_name(device)
            if device.type == "cuda" else platform.processor() or platform.machine(),
            "torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
            "teacher": args.teacher or cfg0.teacher.arch, "students": students, "batch_size": batch,
            "amp": amp, "channels_last": channels_last, "compile": bool(args.compile),
            "cudnn_benchmark": torch.backends.cudnn.benchmark, "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "warmup": warmup, "repeats": repeats, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None}
    result = {"meta": meta, "ceilings": ceilings, "rows": rows, "estimates": estimates}
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"steps_{args.profile}_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    print(format_table(result))
    print(f"\nwritten: {out}")
    return result


def format_table(result: dict[str, Any]) -> str:
    m = result["meta"]
    lines = [f"profile={m['profile']} device={m['device']} ({m['device_name']}) torch={m['torch']} "
             f"batch={m['batch_size']} amp={m['amp']} channels_last={m['channels_last']} compile={m['compile']} "
             f"threads={m['threads']} median of {m['repeats']} after {m['warmup']} warm-up"]
    for k, c in result["ceilings"].items():
        lines.append(f"ceiling {k}: conv2d {c['shape']} 3x3 -> {c['tflops']:.3f} TFLOP/s")
    head = f"{'student':<14} {'piece':<26} {'prec':<5} {'ms':>10} {'img/s':>9} {'GFLOP':>9} {'TFLOP/s':>8} {'%ceil':>6} {'peakMB':>8} {'sync':>4}"
    lines += [head, "-" * len(head)]
    for r in result["rows"]:
        def f(v: Any, fmt: str) -> str:
            return "-" if v is None else format(v, fmt)
        prec = {"float32": "fp32", "bfloat16": "bf16"}.get(r["precision"], r["precision"])
        lines.append(f"{r['student']:<14} {r['piece'] + ('*' if r['scaled'] else ''):<26} {prec:<5} "
                     f"{1e3 * r['median_s']:>10.2f} {f(r['images_per_s'], '9.1f'):>9} "
                     f"{f(r['flops'] and r['flops'] / 1e9, '9.2f'):>9} {f(r['tflops'], '8.3f'):>8} "
                     f"{f(r['share_of_ceiling'] and 100 * r['share_of_ceiling'], '6.1f'):>6} "
                     f"{r['peak_mem_mb']:>8.0f} {f(r['host_syncs'], 'd'):>4}")
    for s, e in result["estimates"].items():
        if "run_h" in e:
            lines.append(f"{s}: epoch {e['full_epoch_s']:.1f} s (generation {e['generation_epoch_s']:.1f} s), "
                         f"run of {e['epochs']} epochs at batch {e['batch_size']}: "
                         + (f"{e['run_h']:.2f} h" if e["run_h"] >= 1 else f"{60 * e['run_h']:.1f} min"))
    lines.append("* = per step of a multi-step call, or extrapolated from fewer attack steps (see note in the JSON)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
