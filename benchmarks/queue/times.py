"""Wall time of every finished job of the run queue, from the worker logs ($HOME/logs/q), as a markdown table.

A job a session's end interrupted was started again and resumed from its last checkpoint: its time is only the
last attempt's, so it is marked and left out of the per-method medians. Each worker runs one job on one core,
beside the other worker (and, at times, the test suite or a notebook build), so the times are those of a busy
2-core machine. python benchmarks/queue/times.py > benchmarks/results/queue_times_cpu.md
"""
from __future__ import annotations

import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def finished_jobs(log_dir: Path) -> list[dict]:
    """One row per job whose last attempt ended with rc=0: name, attempts, wall seconds of that attempt, and the
    CPUs its attempts ran on (the worker writes the CPU into each start line; older logs do not, giving "")."""
    starts: dict[str, int] = defaultdict(int)
    cpus: dict[str, list[str]] = defaultdict(list)
    ended: dict[str, str] = {}
    for worker in sorted(log_dir.glob("worker*.log")):
        for line in worker.read_text().splitlines():
            m = re.match(r"\S+ (start|end) (\S+)(?: rc=(\d+))?(?: on (.+))?", line)
            if m and m[1] == "start":
                starts[m[2]] += 1
                if m[4] and m[4] not in cpus[m[2]]:
                    cpus[m[2]].append(m[4])
            elif m:
                ended[m[2]] = m[3]
    rows = []
    for name, rc in ended.items():
        walls = re.findall(r"([\d.]+) s wall", (log_dir / f"{name}.log").read_text()) if rc == "0" else []
        if walls:
            rows.append({"job": name, "attempts": starts[name], "wall_s": float(walls[-1]), "cpu": " + ".join(cpus[name])})
    return rows


def kind(job: str) -> str:
    """The job's method and student without the seed: 'ferd_fmnist-resnet_s3' -> 'ferd_fmnist-resnet'."""
    return re.sub(r"_s\d+$", "", job)


def main(log_dir: Path) -> str:
    rows = finished_jobs(log_dir)
    lines = ["# Wall time of the run queue's jobs (`cpu` profile, final code)", "",
             ("Each job trains one run and evaluates it (Clean, FGSM, PGD-20, CW-20 on the whole test set), or runs one "
             "AutoAttack evaluation, on one core of this 2-core machine beside the other worker. A job a session's end "
             "interrupted resumed from its checkpoint: only its last attempt is timed, and it is left out of the medians. "
             "A job whose run a chapter job had trained first (the chapter-3 job trains FERD without reweighting, "
             "seed 0) only evaluates what is missing, so its time is seconds; a chapter job's time covers its runs. "
             "The best-clean jobs evaluate a checkpoint of an existing run. Made by "
              "`python benchmarks/queue/times.py > benchmarks/results/queue_times_cpu.md`."), "",
             ("A job's CPU is the one its worker logged (a job whose attempts ran on two kinds of CPU lists both; "
              "the runs of one store should come from one kind: `benchmarks/results/reproduce_cpu.md`)."), "",
             "| job | attempts | wall (s) | CPU |", "| --- | --- | --- | --- |"]
    lines += [f"| `{r['job']}` | {r['attempts']} | {r['wall_s']:.0f}{'' if r['attempts'] == 1 else ' (last attempt)'} "
              f"| {r['cpu'] or 'not logged'} |" for r in rows]
    by_kind: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["attempts"] == 1:
            by_kind[kind(r["job"])].append(r["wall_s"])
    lines += ["", "| kind (uninterrupted jobs) | jobs | median wall (s) |", "| --- | --- | --- |"]
    lines += [f"| `{k}` | {len(v)} | {statistics.median(v):.0f} |" for k, v in sorted(by_kind.items())]
    total = sum(r["wall_s"] for r in rows)
    lines += ["", f"{len(rows)} finished jobs, {total / 3600:.1f} core-hours in their last attempts."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.home() / "logs" / "q"))
