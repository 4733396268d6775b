"""What the `cpu` book costs from an empty artifact store, as markdown: the run queue's jobs (every run and
evaluation the chapters read, each on one core of this 2-core machine; from the worker logs, as `times.py`) and
the final `ferd book` run that executed every chapter against the filled store (from `book/status.csv`).

    python benchmarks/queue/book_cost.py > benchmarks/results/book_cpu.md

The two add up to the cost of the book from an empty store: the queue did the training and the evaluations that a
single `ferd book` would do in its chapters, only in an order that let interrupted sessions resume.
"""
from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from times import finished_jobs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

#: The group a queue job belongs to, by the first matching prefix of its name, with the chapters that read it.
GROUPS = [
    ("teacher", "the shipped teacher's evaluation (every attack, whole test set; AutoAttack on 50 per class)", "1-3, 6"),
    ("aa", "AutoAttack on the headline pair (100 images per class at every seed)", "6"),
    ("ch", "chapter jobs (chapter 3's custom rules and oracle runs, chapter 8's budget sweep)", "3, 8"),
    ("ferd_released", "FERD as the released code runs it, 3 seeds", "8"),
    ("ferd_gamma", "the gamma sweep (seed 0)", "5"),
    ("ferd_tau", "tau = 2 (seed 0)", "3"),
    ("ferd_bestclean", "the best-clean checkpoints", "6"),
    ("ferd_no_", "the ablations, 3 seeds", "7"),
    ("ferd_", "FERD, the headline (5 seeds on fmnist-resnet, 3 on fmnist-mobilenet)", "2-8"),
    ("dfrd_plain", "plain DFRD, the headline's baseline (same seeds)", "2-8"),
    ("", "the other baselines (DFHL, DFARD, DERD, RSLAD, Fair-RSLAD; seed 0, both students)", "2, 6"),
]


def group(job: str) -> int:
    """The index in GROUPS of the first prefix `job` starts with."""
    return next(i for i, (prefix, _, _) in enumerate(GROUPS) if job.startswith(prefix))


def chapter_times(path: Path) -> list[tuple[str, float, str, str]]:
    """(chapter, seconds, profile, date) of each chapter's last execution, from the runner's status file."""
    with path.open() as f:
        return [(r["chapter"], float(r["seconds"]), r["profile"], r["date"]) for r in csv.DictReader(f)]


def main(log_dir: Path, status: Path) -> str:
    jobs = finished_jobs(log_dir)
    per_group: dict[int, list[dict]] = defaultdict(list)
    for j in jobs:
        per_group[group(j["job"])].append(j)
    queue_s = sum(j["wall_s"] for j in jobs)
    lines = ["# What the `cpu` book costs on this machine (2 cores, 24 GiB, no GPU)", "",
             "Made by `python benchmarks/queue/book_cost.py > benchmarks/results/book_cpu.md` from the run queue's "
             "worker logs and `book/status.csv`. The book from an empty artifact store is the run queue "
             "(`benchmarks/queue/`: every run and evaluation the chapters read, one job per core) followed by one "
             "`ferd book --profile cpu` that executes the chapters against the filled store. A job a session's end "
             "interrupted resumed from its checkpoint and counts here with its last attempt only, so the queue's "
             "total is a lower bound; per-job times are in `queue_times_cpu.md`.", "",
             "## The run queue", "",
             "| jobs | what they compute | read by chapters | jobs | core-hours |", "| --- | --- | --- | --- | --- |"]
    for i, (prefix, what, chapters) in enumerate(GROUPS):
        if per_group[i]:
            hours = sum(j["wall_s"] for j in per_group[i]) / 3600
            lines.append(f"| `{prefix or 'baselines'}*` | {what} | {chapters} | {len(per_group[i])} | {hours:.1f} |")
    lines += [f"| **all** | | | **{len(jobs)}** | **{queue_s / 3600:.1f}** |", "",
              f"With two workers, one per core, that is about {queue_s / 7200:.1f} hours of wall time.", "",
              "## The chapters against the filled store", "",
              "| chapter | seconds | profile | executed |", "| --- | --- | --- | --- |"]
    rows = chapter_times(status)
    lines += [f"| {c} | {s:.1f} | {p} | {d} |" for c, s, p, d in rows]
    chapters_s = sum(s for _, s, _, _ in rows)
    lines += [f"| **all** | **{chapters_s:.0f}** | | |", "",
              f"**From an empty store: about {(queue_s + chapters_s) / 3600:.1f} core-hours** "
              f"({queue_s / 3600:.1f} in the queue, {chapters_s / 60:.0f} minutes of chapters); a second `ferd book` "
              "finds everything cached and takes the chapters' minutes only."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    logs = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.home() / "logs" / "q"
    print(main(logs, ROOT / "book" / "status.csv"), end="")
