"""Which jobs of the run queue are finished, read from the artifact store (nothing is trained or evaluated).

    python benchmarks/queue/status.py                 # a line per job: done / pending, and the counts
    python benchmarks/queue/status.py --pending       # only the pending jobs, as queue lines (a fresh jobs.txt)

A student job is done when its run's final checkpoint and the per-class table of each of its attacks are in the
store; the teacher job when the teacher's tables are; a chapter job (`book ...`) always counts as pending, since
what it computes is the chapter's own (it returns quickly when its runs are cached). The last line estimates the
time left from the worker logs ($HOME/logs/q): each pending job costs the median of the finished jobs of its kind.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ferd.book.experiments import eval_path, pending  # noqa: E402
from ferd.cli import _config, build_parser  # noqa: E402
from ferd.toolkit.artifacts import ArtifactStore  # noqa: E402

QUEUE = Path(__file__).resolve().parent
sys.path.insert(0, str(QUEUE))
from times import finished_jobs, kind  # noqa: E402


def job_done(args: list[str], store: ArtifactStore) -> bool:
    """Whether the store already holds everything the queue line `args` (ferd CLI arguments) produces."""
    if args[0] != "evaluate":
        return False
    parsed = build_parser().parse_args(args)
    cfg = _config(parsed)
    if parsed.teacher:
        return all(eval_path(cfg, "teacher", cfg.key("teacher"), name, store).exists() for name in cfg.attack.attacks)
    return not pending(cfg, store=store, which=parsed.which)


def core_seconds_left(pending_jobs: list[str], finished: list[dict]) -> float:
    """Estimated core-seconds of `pending_jobs`: each costs the median wall time of the finished uninterrupted jobs of
    its kind ('ferd_fmnist-resnet'), else of its family (the kind's first word: 'aa100', 'ferd', ...), else of all;
    a chapter job that has finished before costs nothing (it only re-reads the store)."""
    timed = [r for r in finished if r["attempts"] == 1]
    done_chapters = {r["job"] for r in finished if r["job"].endswith("_book")}
    total = 0.0
    for job in pending_jobs:
        if job in done_chapters:
            continue
        k = kind(job)
        for same in (lambda other: other == k, lambda other: other.split("_")[0] == k.split("_")[0], lambda _: True):
            walls = [r["wall_s"] for r in timed if same(kind(r["job"]))]
            if walls:
                total += statistics.median(walls)
                break
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pending", action="store_true", help="print only the pending jobs, as queue lines")
    args = p.parse_args(argv)
    store = ArtifactStore()
    lines = subprocess.run([sys.executable, str(QUEUE / "make_jobs.py")], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    done, left = 0, []
    for line in lines:
        name, *job = line.split()
        ok = job_done(job, store)
        done += ok
        if not ok:
            left.append(name)
        if args.pending:
            if not ok:
                print(line)
        else:
            print(f"{'done   ' if ok else 'pending'} {name}")
    if not args.pending:
        print(f"{done} of {len(lines)} jobs done (store: {store.root})", file=sys.stderr)
        logs = Path.home() / "logs" / "q"
        if logs.is_dir():
            hours = core_seconds_left(left, finished_jobs(logs)) / 3600
            print(f"about {hours:.1f} core-hours left ({hours / 2:.1f} h with two workers), each pending job at the "
                  f"median of the finished jobs of its kind ({logs})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
