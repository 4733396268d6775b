"""Time the book: each chapter executed by `ferd.book.runner.run_book`, then (optionally) the Jupyter Book build.

    python benchmarks/bench_book.py --profile smoke                       # every chapter, into a temporary folder
    python benchmarks/bench_book.py --profile cpu --only 01,05 --build
    python benchmarks/bench_book.py --profile cpu --jobs 2                # the runner's parallel mode

One chapter at a time (the default), each through `run_book(profile, only=chapter, out, build=False)`: the
wall time around the call (`wall_s`: kernel start and the appendix pages included) and the runner's own time
for the notebook (`runner_s`, from `<out>/book/status.csv`). With `--jobs N > 1` one call executes them all
and only the runner's per-chapter times and the total exist. A failed chapter is recorded with its message
and the others still run. Finished training runs are reused from the artifact store ($FERD_ARTIFACTS or
./artifacts): point FERD_ARTIFACTS at an empty folder to time the book from scratch. Writes JSON and a table.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ferd.book import runner as book  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="smoke", choices=["smoke", "cpu", "paper"])
    p.add_argument("--only", default=None, help="comma-separated chapter numbers (default: all)")
    p.add_argument("--out", default=None, help="book output root (default: a temporary folder, so no committed "
                   "file changes; pass the repository root to time a real `ferd book`)")
    p.add_argument("--device", default=None, help="papermill parameter `device` (default: the runner's)")
    p.add_argument("--jobs", type=int, default=1, help="chapters executed at once by the runner")
    p.add_argument("--build", action="store_true", help="also time `jupyter-book build`")
    p.add_argument("--json", default=None, help="JSON path (default benchmarks/results/book_<profile>.json)")
    return p.parse_args(argv)


def runner_seconds(out: Path, profile: str) -> dict[str, float]:
    """Per-chapter seconds the runner recorded at `profile` (`book/status.csv`)."""
    path = out / "book" / "status.csv"
    if not path.exists():
        return {}
    with path.open(newline="") as fh:
        return {r["chapter"]: float(r["seconds"]) for r in csv.DictReader(fh) if r.get("profile") == profile}


def call_runner(**kw: Any) -> None:
    """`run_book` with the keywords given (None leaves the runner's default)."""
    book.run_book(**{k: v for k, v in kw.items() if v is not None})


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Path(args.out).resolve() if args.out else Path(tempfile.mkdtemp(prefix=f"ferd-book-{args.profile}-"))
    names = [p.stem for p in book.select_chapters(book.chapters(), args.only.split(",") if args.only else None)]
    store = Path(os.environ.get("FERD_ARTIFACTS", "artifacts"))
    store_files_at_start = sum(1 for p in store.rglob("*") if p.is_file()) if store.exists() else 0
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    if args.jobs > 1:
        error = None
        try:
            call_runner(profile=args.profile, only=[n[:2] for n in names], out=out, build=False,
                        device=args.device, jobs=args.jobs)
        except book.BookError as err:
            error = str(err)
        recorded = runner_seconds(out, args.profile)
        rows = [{"chapter": n, "wall_s": None, "runner_s": recorded.get(n), "error": error if n not in recorded else None}
                for n in names]
    else:
        for n in names:
            print(f"executing {n} ...", file=sys.stderr, flush=True)
            t0, error = time.perf_counter(), None
            try:
                call_runner(profile=args.profile, only=n[:2], out=out, build=False, device=args.device)
            except book.BookError as err:
                error = str(err)
            rows.append({"chapter": n, "wall_s": time.perf_counter() - t0,
                         "runner_s": None if error else runner_seconds(out, args.profile).get(n), "error": error})
    execute_s = time.perf_counter() - start
    build_s = build_error = None
    if args.build:
        t0 = time.perf_counter()
        try:
            if out != book.ROOT:  # as run_book does: chapters never run here
                book._prune_toc(out)
            book.build_book(out)
        except book.BookError as err:
            build_error = str(err)
        build_s = time.perf_counter() - t0
    result = {"profile": args.profile, "out": "the repository" if out == book.ROOT else "a temporary folder",
              "jobs": args.jobs, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "artifacts": "$FERD_ARTIFACTS" if os.environ.get("FERD_ARTIFACTS") else "./artifacts",  # no machine path
              "store_files_at_start": store_files_at_start, "chapters": rows,
              "execute_s": execute_s, "build_s": build_s, "build_error": build_error}
    path = Path(args.json) if args.json else Path(__file__).parent / "results" / f"book_{args.profile}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"{'chapter':<22} {'wall s':>8} {'runner s':>9}  status")
    for r in rows:
        wall = "-" if r["wall_s"] is None else f"{r['wall_s']:.1f}"
        run = "-" if r["runner_s"] is None else f"{r['runner_s']:.1f}"
        print(f"{r['chapter']:<22} {wall:>8} {run:>9}  {'FAILED: ' + r['error'][:60] if r['error'] else 'ok'}")
    print(f"execution {execute_s:.1f} s" + (f", build {build_s:.1f} s" if build_s is not None else "")
          + (f" (build FAILED: {build_error[:80]})" if build_error else ""))
    print(f"written: {path}")
    return result


if __name__ == "__main__":
    main()
