"""The `ferd` command line (`python -m ferd ...`).

    ferd train-teacher --profile cpu
    ferd distill  --profile cpu --preset ferd --student fmnist-resnet [--set gamma=0.5 --set seed=1]
    ferd evaluate --profile cpu --teacher                 # the teacher's per-class table
    ferd evaluate --profile cpu --preset ferd --student fmnist-resnet --out results/x.csv
    ferd health   --profile cpu --preset ferd --preset dfrd_plain --out results/health_cpu.csv
    ferd book     --profile cpu [--only 05 [--only 06]]

Every command takes `--set KEY=VALUE` overrides (the same keys as `ferd.config.make_config`); values are
parsed as Python literals when possible ("0.5", "True", "(1, 2)"), else kept as strings.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any, NoReturn, Sequence

from ferd.config import PRESETS, PROFILES, describe_fields, make_config
from ferd.errors import FerdError


def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise FerdError(f"--set {item!r}: expected KEY=VALUE, e.g. --set gamma=0.5")
        k, v = item.split("=", 1)
        if v.strip().lower() in ("true", "false"):  # shell spelling: --set distill.channels_last=true
            out[k.strip()] = v.strip().lower() == "true"
            continue
        try:
            out[k.strip()] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k.strip()] = v
    return out


def _common(p: argparse.ArgumentParser, preset: bool = True) -> None:
    p.add_argument("--profile", default="cpu", choices=list(PROFILES), help="size/dataset profile (default: cpu)")
    if preset:
        p.add_argument("--preset", default="ferd", choices=list(PRESETS), help="method preset (default: ferd)")
        p.add_argument("--student", default=None, help="student architecture (default: the profile's)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (default: the profile's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set gamma=0.5 --set distill.epochs=10")
    p.add_argument("--artifacts", default=None, help="artifact store root (default: $FERD_ARTIFACTS or ./artifacts)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _config(args: argparse.Namespace):
    overrides = _parse_sets(args.set)
    for name in ("student", "seed", "device"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    return make_config(args.profile, getattr(args, "preset", "ferd"), overrides)


def _store(args: argparse.Namespace):
    from ferd.toolkit.artifacts import ArtifactStore

    return ArtifactStore(args.artifacts)


def _write(df, out: str | None, default: Path) -> Path:
    from ferd.toolkit import artifacts

    path = Path(out) if out else default
    artifacts.write_atomic(path, df.to_csv(index=False).encode())
    path.with_name(path.name + ".sha256").unlink(missing_ok=True)
    return path


def cmd_train_teacher(args: argparse.Namespace) -> int:
    from ferd.method.teachers import train_teacher

    cfg = _config(args)
    _, history = train_teacher(cfg, _store(args), progress=not args.quiet, use_shipped=not args.retrain)
    print(history.to_string(index=False))
    print(f"teacher {cfg.teacher.arch} ({cfg.teacher.method}) under key {cfg.key('teacher')}")
    if args.ship:
        from ferd.method.teachers import ship_teacher

        command = "python -m ferd " + " ".join(a for a in args.argv if a != "--ship")
        print(f"shipped as {ship_teacher(cfg, _store(args), command=command.strip())}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from ferd.book.experiments import distill

    cfg = _config(args)
    res = distill(cfg, _store(args), progress=not args.quiet)
    last = res.history.iloc[-1]
    print(f"{cfg.preset} -> {cfg.student}: {len(res.history)} epochs, run dir {res.run_dir}")
    for k in ("acc_clean", "acc_pgd", "student_loss", "max_p"):
        if k in last:
            print(f"  {k} = {last[k]:.4f}")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """One health row per (preset, seed) run (spec 8.0), trained and evaluated first where the store lacks it."""
    from ferd.book.health import health_table

    base = _parse_sets(args.set)
    if args.student:
        base["student"] = args.student
    cfgs = [make_config(args.profile, preset, {**base, "seed": seed})
            for preset in (args.preset or ["ferd", "dfrd_plain"]) for seed in (args.seeds or [0])]
    table = health_table(cfgs, _store(args), progress=not args.quiet)
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.to_string(index=False))
    if args.out:
        print(f"written {_write(table, args.out, Path(args.out))}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ferd.book.experiments import evaluate_student, evaluate_teacher, summary
    from ferd.toolkit.evaluate import format_table

    cfg = _config(args)
    store = _store(args)
    if args.teacher:
        df = evaluate_teacher(cfg, store, progress=not args.quiet)
        name = f"teacher_{cfg.dataset}_{cfg.teacher.arch}_{cfg.profile}"
    else:
        df = evaluate_student(cfg, args.which, store, progress=not args.quiet)
        name = f"{cfg.preset}_{cfg.student}_{cfg.profile}_seed{cfg.seed}_{args.which}"
    path = _write(df, args.out, Path("results") / f"{name}_per_class.csv")
    s = summary(df, cfg)
    print(df.pivot_table(index=["class_index", "class_name"], columns="attack", values="accuracy",
                         sort=False).round(4).to_string())
    print(format_table(s).to_string())
    _write(s, str(path).replace("_per_class.csv", "_summary.csv"), path)
    print(f"per-class table written to {path}")
    return 0


def cmd_book(args: argparse.Namespace) -> int:
    from ferd.book.params import merge_params
    from ferd.book.runner import run_book

    html = run_book(profile=args.profile, only=args.only, out=args.out, build=not args.no_build, jobs=args.jobs,
                    params=merge_params(args.param or (), args.params or ()))
    print(f"book: {html}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors, like ferd's own ("ferd distill: error: argument --preset: ..."), exit 2;
    `--help` still shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ferd", description="FERD: fairness-enhanced data-free robustness "
                                     "distillation (reproducible companion).")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train-teacher", help="load the shipped teacher, or train (or load) the profile's teacher")
    _common(p, preset=False)
    p.add_argument("--retrain", action="store_true", help="train into the artifact store even if a teacher ships")
    p.add_argument("--ship", action="store_true", help="then copy it into ferd/shipped/ with its sha256 (maintainers)")
    p.set_defaults(func=cmd_train_teacher)
    p = sub.add_parser("distill", help="distil a student with a preset", formatter_class=argparse.RawTextHelpFormatter,
                       epilog="presets: " + ", ".join(PRESETS) + "\n\nconfig fields (use with --set):\n"
                       + describe_fields())
    _common(p)
    p.set_defaults(func=cmd_distill)
    p = sub.add_parser("evaluate", help="per-class accuracy under Clean/FGSM/PGD/CW/AA")
    _common(p)
    p.add_argument("--teacher", action="store_true", help="evaluate the teacher instead of a student")
    p.add_argument("--which", default="final", choices=["final", "best_clean"], help="student checkpoint")
    p.add_argument("--out", default=None, help="CSV path for the per-class table (default under results/)")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("health", help="was each run healthy? agreement, FAE mask, class weights, student vs teacher")
    _common(p, preset=False)
    p.add_argument("--preset", action="append", choices=list(PRESETS), help="repeat for several (default: ferd, "
                   "dfrd_plain)")
    p.add_argument("--student", default=None, help="student architecture (default: the profile's)")
    p.add_argument("--seeds", type=int, nargs="*", default=None, help="seeds (default: 0)")
    p.add_argument("--out", default=None, help="CSV path for the table")
    p.set_defaults(func=cmd_health)
    p = sub.add_parser("book", help="execute every chapter with papermill, then build the Jupyter Book")
    p.add_argument("--profile", default="cpu", choices=list(PROFILES))
    p.add_argument("--only", action="append", default=None,
                   help="execute only this chapter (e.g. 05); repeat it for several (--only 01 --only 04)")
    p.add_argument("--out", default=None, help="output root (default: the repository)")
    p.add_argument("--no-build", action="store_true", help="execute notebooks but skip jupyter-book build")
    p.add_argument("--param", action="append", metavar="[NN:]NAME=VALUE", help="override a chapter parameter "
                   "(VALUE is YAML: 06:seeds=[0,1]); without NN:, in every executed chapter that declares NAME")
    p.add_argument("--params", action="append", metavar="FILE", help="YAML file {chapter: {name: value}} of "
                   "overrides, e.g. book/one_seed.yaml (a cheaper book)")
    p.add_argument("--jobs", type=int, default=1, help="chapters executed at once (default 1: chapters in turn, "
                   "each training its runs side by side, one per core; see ferd.book.experiments.prefetch)")
    p.set_defaults(func=cmd_book)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except FerdError as err:
        print(f"ferd: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
