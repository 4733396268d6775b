"""Does synthesis produce the requested classes? Replicas of the generation stage for several settings (issue 10).

Each setting runs `--rounds` FERD generation rounds (`ferd.method.synthesis.ferd_round`, labels drawn uniformly, an
untrained student as in the warm-up epochs) against the profile's teacher and reports, for the pool those rounds
build: the teacher-label agreement overall and of the worst class, the FAE mask's non-robust channel fraction,
and the generation time per round. A setting is a comma-separated list of config overrides, e.g.
`generator_reset=never,gen_loss_weights=5:1:10:5`.

    python benchmarks/synthesis_sweep.py --rounds 8 --out benchmarks/results/synthesis_sweep.csv \\
        "generator_reset=every_round" "generator_reset=never,gen_loss_weights=5:1:10:5"
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from ferd.config import make_config  # noqa: E402
from ferd.method.generator import Generator  # noqa: E402
from ferd.method.losses import BNStatsLoss  # noqa: E402
from ferd.method.pool import agreement_columns  # noqa: E402
from ferd.method.synthesis import ferd_round, sample_labels  # noqa: E402
from ferd.method.teachers import train_teacher  # noqa: E402
from ferd.toolkit.models import create_model  # noqa: E402
from ferd.toolkit.runtime import seed_everything  # noqa: E402


def parse_setting(text: str) -> dict[str, object]:
    """'a=1,b=x:y' -> {'a': 1, 'b': ('x', 'y')}; numbers are parsed, ':' separates tuple items."""
    out: dict[str, object] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        parts = [_number(v) for v in value.split(":")]
        out[key.strip()] = tuple(parts) if len(parts) > 1 else parts[0]
    return out


def _number(v: str) -> object:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def replicate(profile: str, setting: str, rounds: int, seed: int, teacher_checkpoint: str | None = None
              ) -> dict[str, object]:
    cfg = make_config(profile, "ferd", overrides={**parse_setting(setting), "seed": seed})
    d = cfg.distill
    if teacher_checkpoint:  # a teacher still in training: its last epoch's checkpoint
        teacher = create_model(cfg.teacher.arch, num_classes=cfg.num_classes)
        blob = torch.load(teacher_checkpoint, map_location="cpu", weights_only=False)
        teacher.load_state_dict(blob.get("state_dict", blob.get("model")))
        teacher.eval()
    else:
        teacher = train_teacher(cfg, progress=False)[0].eval()
    seed_everything(seed)
    student = create_model(cfg.student, num_classes=cfg.num_classes).eval()
    G = Generator(nz=d.nz, img_size=28, nc=1, ngf=d.ngf)
    bn = BNStatsLoss(teacher)
    xs, ys, nonrobust = [], [], []
    start = time.perf_counter()
    for r in range(rounds):
        y = sample_labels(torch.full((cfg.num_classes,), 1.0 / cfg.num_classes), d.batch_size)
        res = ferd_round(teacher, student, G, bn, y, nz=d.nz, steps=d.n_g, lr_g=d.lr_g, lr_z=d.lr_z,
                         weights=tuple(d.gen_loss_weights), use_fae=d.use_fae, ib_steps=d.ib_steps, ib_lr=d.ib_lr,
                         ib_beta=d.ib_beta, ib_noise=d.ib_noise, ikl_T2=d.ikl_T2, padding=d.aug_padding,
                         device=torch.device("cpu"), reset_generator=d.generator_reset == "every_round" or r == 0,
                         flip=d.aug_flip)
        xs.append(res.x)
        ys.append(res.y)
        nonrobust.append(res.parts["nonrobust"])
    seconds = (time.perf_counter() - start) / rounds
    x, y = torch.cat(xs), torch.cat(ys)
    with torch.no_grad():
        agree = (teacher(x).argmax(1) == y).float()
    cols = agreement_columns("agree_pool", agree, y, cfg.num_classes)
    return {"setting": setting or "(profile)", "profile": profile, "teacher": teacher_checkpoint or "profile", "seed": seed, "rounds": rounds,
            "batch_size": d.batch_size, "n_g": d.n_g, "agree_pool": cols["agree_pool"],
            "agree_pool_worst": cols["agree_pool_worst"], "nonrobust_mean": float(pd.Series(nonrobust).mean()),
            "pixel_std": float(x.std(0).mean()), "seconds_per_round": seconds, "threads": torch.get_num_threads(),
            **{k: v for k, v in cols.items() if k[len("agree_pool_"):].isdigit()}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("settings", nargs="*", default=[""], help="comma-separated overrides per setting")
    p.add_argument("--profile", default="cpu", choices=["smoke", "cpu"])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="CSV to append the rows to")
    p.add_argument("--teacher-checkpoint", default=None, help="load the teacher from this file (exploration only)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for setting in args.settings:
        row = replicate(args.profile, setting, args.rounds, args.seed, args.teacher_checkpoint)
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
        if args.out:
            out = Path(args.out)
            pd.DataFrame([row]).to_csv(out, mode="a", header=not out.exists(), index=False)


if __name__ == "__main__":
    main()
