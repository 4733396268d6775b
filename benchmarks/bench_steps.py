"""Time the pieces of FERD's loop (spec 5.9, 5.11) on random inputs and randomly initialised networks.

    python benchmarks/bench_steps.py --profile smoke                     # seconds, CPU
    python benchmarks/bench_steps.py --profile cpu --repeats 3
    python benchmarks/bench_steps.py --profile paper --device cpu        # WRN-34-10 -> RN-18 / MN-V2, batch 4
    python benchmarks/bench_steps.py --profile paper --device cuda --out $OUT/bench_paper.json

For each student: one generator step split into its parts (teacher forward + BN loss, IB fit, uniformity
term, student forward + adversarial term, backward + Adam step) and whole (`ferd_round` per step), one student
step split (teacher target, UTAE attack, update) and whole (`Distiller.student_step`), the class-weight probe
(PGD on the teacher), and evaluation per attack on one batch. Each piece: warm-up runs, then the median of
`--repeats` timed runs; images/s; FLOPs counted with `torch.utils.flop_counter.FlopCounterMode`; the share of
the dense-convolution throughput measured in the same run (a conv2d of a representative shape, FLOPs computed
analytically); peak memory. No dataset is read. benchmarks/README.md explains the columns and the JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from ferd.artifacts import ArtifactStore  # noqa: E402
from ferd.augment import augment  # noqa: E402
from ferd.config import make_config, resolve_device  # noqa: E402
from ferd.distill import Distiller  # noqa: E402
from ferd.experiments import build_attacks  # noqa: E402
from ferd.fae import ib_fit, robust_mask, uniformity_loss  # noqa: E402
from ferd.losses import ikl, onehot_prior, student_loss, teacher_prior  # noqa: E402
from ferd.models import create_model  # noqa: E402
from ferd.synthesis import SynthesisResult, frozen, sample_labels  # noqa: E402

# representative dense conv of each profile's teacher: (batch is the run's), channels, side
CEILING_CONV = {"smoke": (64, 14), "cpu": (64, 14), "paper": (320, 16)}  # fmnist-cnn stage 2; WRN-34-10 stage 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="smoke", choices=["smoke", "cpu", "paper"])
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per piece (default 3 on CPU, 10 on CUDA)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 1 on CPU, 3 on CUDA)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/steps_<profile>_<device>.json)")
    p.add_argument("--student", default=None, help="student(s), comma-separated (paper default: resnet18,mobilenetv2)")
    p.add_argument("--teacher", default=None, help="teacher architecture (default: the profile's)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: the profile's; 4 for paper on CPU)")
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
            repeats: int) -> list[float]:
    """Wall seconds of `fn(setup())` (setup untimed), synchronised, after `warmup` untimed runs."""
    for _ in range(warmup):
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


def count_flops(fn: Callable[[Any], Any], setup: Callable[[], Any] | None) -> int:
    state = setup() if setup else None
    with FlopCounterMode(display=False) as counter:
        fn(state)
    return int(counter.get_total_flops())


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


# ---------------------------------------------------------------------------------------------- the pieces
class Piece:
    def __init__(self, name: str, group: str, fn: Callable[[Any], Any], setup: Callable[[], Any] | None = None,
                 precision: str = "float32", images: int = 0, note: str = "", scale: float = 1.0):
        self.name, self.group, self.fn, self.setup = name, group, fn, setup
        self.precision, self.images, self.note, self.scale = precision, images, note, scale


def generator_pieces(d: Distiller, gen_steps: int, amp: str) -> list[Piece]:
    """The parts of one generator step (spec 5.9 generation stage) and the whole step through `ferd_round`."""
    dd, dev, B = d.d, d.device, d.d.batch_size
    T, S, bn, G = d.fast.teacher_gen, d.fast.student_gen, d.bn, d.G
    prec = "bfloat16" if amp == "bf16" else "float32"
    y = sample_labels(d.p, B).to(dev)
    z = torch.randn(B, dd.nz, device=dev, requires_grad=True)
    opt = torch.optim.Adam([{"params": G.parameters(), "lr": dd.lr_g}, {"params": [z], "lr": dd.lr_z}],
                           betas=(0.5, 0.999))
    T.eval()
    S.eval()
    G.train()

    def teacher_bn(_: Any) -> dict[str, torch.Tensor]:
        x = G(z)
        xh = augment(x, padding=dd.aug_padding)
        with bn.recording():
            Z = T.features(xh)
            t = T.head(Z)
        return {"x": x, "xh": xh, "Z": Z, "t": t, "l_bn": bn.loss(), "l_oh": F.cross_entropy(t, y)}

    def student_adv(s: dict[str, torch.Tensor]) -> torch.Tensor:
        return -ikl(S(s["xh"]), s["t"], teacher_prior(s["t"], dd.ikl_T2))

    def fit(s: dict[str, torch.Tensor]) -> torch.Tensor:
        return ib_fit(T.head, s["Z"].detach(), y, steps=dd.ib_steps, lr=dd.ib_lr, beta=dd.ib_beta, noise=dd.ib_noise)

    def with_mask(s: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**s, "s_star": fit(s)}

    def uniformity(s: dict[str, torch.Tensor]) -> torch.Tensor:
        return uniformity_loss(T.head, s["Z"], robust_mask(s["s_star"], s["Z"].detach()))

    def full_loss(_: Any) -> torch.Tensor:
        s = with_mask(teacher_bn(None))
        w_bn, w_adv, w_oh, w_uni = dd.gen_loss_weights
        return w_bn * s["l_bn"] + w_adv * student_adv(s) + w_oh * s["l_oh"] + w_uni * uniformity(s)

    def backward_step(loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def round_steps(_: Any) -> None:
        d.synthesize(epoch=1)

    dd.n_g = gen_steps
    frozen_ctx = frozen(d.teacher, d.student)
    frozen_ctx.__enter__()  # the generator stage freezes both networks (spec 5.2); ferd_round does the same
    return [
        Piece("gen.teacher_fwd+bn_loss", "gen", teacher_bn, None, prec, B, "G, augment, teacher features+head, BN hooks"),
        Piece("gen.ib_fit", "gen", fit, lambda: teacher_bn(None), prec, B, f"{dd.ib_steps} Adam steps, head fwd+bwd"),
        Piece("gen.uniformity", "gen", uniformity, lambda: with_mask(teacher_bn(None)), prec, B, "mask + head on Z_nr"),
        Piece("gen.student_fwd+adv", "gen", student_adv, lambda: teacher_bn(None), prec, B, "student forward, -IKL"),
        Piece("gen.backward+step", "gen", backward_step, lambda: full_loss(None), prec, B,
              "one backward through teacher, student, G; Adam"),
        Piece("gen.step", "gen", round_steps, None, prec, B, f"ferd_round with {gen_steps} steps, per step",
              scale=1.0 / gen_steps),
    ], frozen_ctx


def student_pieces(d: Distiller, amp: str) -> list[Piece]:
    """The parts of one student step (spec 5.7-5.9) and the whole `Distiller.student_step`."""
    dd, B = d.d, d.d.batch_size
    prec = "bfloat16" if amp == "bf16" else "float32"

    def target(_: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = d.next_batch()
        x_f = augment(x, padding=dd.aug_padding)
        with torch.no_grad():
            t = d.teacher(x_f)
        return x_f, y, t

    def utae(s: tuple) -> torch.Tensor:
        return d.make_attack(2, 0)(s[0], s[2])

    def with_adv(_: Any) -> tuple:
        x_f, y, t = target(None)
        return x_f, y, t, utae((x_f, y, t))

    def update(s: tuple) -> None:
        x_f, y, t, x_u = s
        d.student.train()
        prior = onehot_prior(y, d.C) if dd.ikl_mode == "onehot" else teacher_prior(t, dd.ikl_T2)
        out = student_loss(*d.fast.student_views(x_f, x_u), t, prior, dd.lambda_clean, dd.lambda_adv)
        d._backward(out.total, 2, 0)

    return [
        Piece("student.teacher_target", "student", target, None, "float32", B, "pool batch, augment, teacher fwd"),
        Piece("student.utae", "student", utae, lambda: target(None), "float32", B, f"{dd.utae_steps} student fwd+bwd"),
        Piece("student.update", "student", update, lambda: with_adv(None), prec, B, "2 student fwd, bwd, SGD"),
        Piece("student.step", "student", lambda _: d.student_step(2, 0), None, prec, B, "Distiller.student_step"),
    ]


def probe_piece(d: Distiller, cap: int | None) -> list[Piece]:
    dd, B, dev = d.d, d.d.batch_size, d.device
    full = dd.probe_steps
    if cap:
        dd.probe_steps = min(full, cap)
    g = torch.Generator(device=dev).manual_seed(0)
    x = torch.rand(B, d.nc, d.img_size, d.img_size, device=dev, generator=g)
    res = SynthesisResult(x, sample_labels(d.p, B).to(dev), x, {})
    scale = full / dd.probe_steps if dd.probe_steps else 1.0
    return [Piece(f"probe.pgd{full}", "probe", lambda _: d.probe(res, 1), None, "float32", B,
                  f"PGD-{full} on the teacher + margins" + (f" (ran {dd.probe_steps} steps, scaled)" if scale != 1 else ""),
                  scale=scale)]


def eval_pieces(d: Distiller, cfg: Any, batch: int, aa: bool, cap: int | None) -> list[Piece]:
    names = [n for n in ("clean", "fgsm", "pgd", "cw") if n in cfg.attack.attacks or n == "clean"] + (["aa"] if aa else [])
    full = {"pgd": cfg.attack.pgd_steps, "cw": cfg.attack.cw_steps}
    if cap:
        cfg.attack.pgd_steps, cfg.attack.cw_steps = min(full["pgd"], cap), min(full["cw"], cap)
    model = d.student.eval()
    g = torch.Generator(device=d.device).manual_seed(1)
    x = torch.rand(batch, d.nc, d.img_size, d.img_size, device=d.device, generator=g)
    y = torch.randint(0, d.C, (batch,), device=d.device, generator=g)
    pieces = []
    for name in names:
        try:
            atk = build_attacks(cfg, model, (name,))[name]
        except ImportError as err:  # pyautoattack missing
            print(f"skipping {name}: {err}", file=sys.stderr)
            continue

        def run(_: Any, atk: Any = atk) -> torch.Tensor:
            with torch.no_grad():
                return model(atk(x, y)).argmax(1)

        run_steps = {"pgd": cfg.attack.pgd_steps, "cw": cfg.attack.cw_steps}.get(name)
        scale = full[name] / run_steps if run_steps else 1.0
        pieces.append(Piece(f"eval.{name}", "eval", run, None, "float32", batch,
                            repr(atk) + (" (scaled)" if scale != 1 else ""), scale=scale))
    return pieces


def forward_flops(d: Distiller) -> dict[str, int]:
    """Forward FLOPs of each network on one batch: the terms of the analytical floor (README)."""
    B, dev = d.d.batch_size, d.device
    x = torch.rand(B, d.nc, d.img_size, d.img_size, device=dev)
    out = {}
    with torch.no_grad():
        for name, fn in (("teacher", d.teacher), ("student", d.student), ("head", None),
                         ("generator", lambda _: d.G(torch.randn(B, d.d.nz, device=dev)))):
            if name == "head":
                Z = d.teacher.features(x)
                fn = d.teacher.head
                inp = Z
            else:
                inp = x
            with FlopCounterMode(display=False) as c:
                fn(inp)
            out[name] = int(c.get_total_flops())
    return out


def floor_flops(f: dict[str, int], dd: Any) -> dict[str, int]:
    """FLOPs the passes of each step must do: a backward to the input costs about one forward, a backward that
    also needs weight gradients about two (spec 5.11)."""
    T, S, H, G = f["teacher"], f["student"], f["head"], f["generator"]
    return {"gen.step": 3 * G + 2 * T + 2 * S + 2 * dd.ib_steps * H + 2 * H,
            "student.step": T + 2 * dd.utae_steps * S + 2 * 3 * S,
            "probe": (2 * dd.probe_steps + 1) * T}


# ---------------------------------------------------------------------------------------------- main
def build(args: argparse.Namespace, device: torch.device, student: str) -> tuple[Distiller, Any]:
    on_cpu = device.type == "cpu"
    base = make_config(args.profile, overrides={"device": str(device)})
    over: dict[str, Any] = {"device": str(device), "student": student}
    if args.batch:
        over["batch_size"] = args.batch
    elif args.profile == "paper" and on_cpu:
        over["batch_size"] = 4
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
            times = measure(pc.fn, pc.setup, device, warmup, repeats)
            flops = count_flops(pc.fn, pc.setup) if not dd.compile else None
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
                    "floor_s": {k: v / (ceilings[by["gen.step"]["precision"]]["tflops"] * 1e12)
                                for k, v in floors.items()}})
    return rows, est


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = torch.device(resolve_device(args.device))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    on_cpu = device.type == "cpu"
    warmup = args.warmup if args.warmup is not None else (1 if on_cpu else 3)
    repeats = args.repeats if args.repeats is not None else (3 if on_cpu else 10)
    cfg0 = make_config(args.profile, overrides={"device": str(device)})
    students = (args.student or ("resnet18,mobilenetv2" if args.profile == "paper" else cfg0.student)).split(",")
    batch = args.batch or (4 if args.profile == "paper" and on_cpu else cfg0.distill.batch_size)
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
    head = f"{'student':<12} {'piece':<26} {'prec':<5} {'ms':>10} {'img/s':>9} {'GFLOP':>9} {'TFLOP/s':>8} {'%ceil':>6} {'peakMB':>8} {'sync':>4}"
    lines += [head, "-" * len(head)]
    for r in result["rows"]:
        def f(v: Any, fmt: str) -> str:
            return "-" if v is None else format(v, fmt)
        lines.append(f"{r['student']:<12} {r['piece'] + ('*' if r['scaled'] else ''):<26} {r['precision'][:4]:<5} "
                     f"{1e3 * r['median_s']:>10.2f} {f(r['images_per_s'], '9.1f'):>9} "
                     f"{f(r['flops'] and r['flops'] / 1e9, '9.2f'):>9} {f(r['tflops'], '8.3f'):>8} "
                     f"{f(r['share_of_ceiling'] and 100 * r['share_of_ceiling'], '6.1f'):>6} "
                     f"{r['peak_mem_mb']:>8.0f} {f(r['host_syncs'], 'd'):>4}")
    for s, e in result["estimates"].items():
        if "run_h" in e:
            lines.append(f"{s}: epoch {e['full_epoch_s']:.1f} s (generation {e['generation_epoch_s']:.1f} s), "
                         f"run of {e['epochs']} epochs at batch {e['batch_size']}: {e['run_h']:.2f} h")
    lines.append("* = per step of a multi-step call, or extrapolated from fewer attack steps (see note in the JSON)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
