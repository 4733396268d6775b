"""The run queue (benchmarks/queue) trains what the chapters read: every line is a valid `ferd` command, and the
runs of the chapters' default parameters are all among the queue's runs, so `ferd book` finds them in the store."""
from __future__ import annotations

import runpy
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from ferd.book.params import chapter_parameters
from ferd.cli import _config, build_parser
from ferd.config import make_config
from ferd.method.methods import run_key

ROOT = Path(__file__).resolve().parents[1]
QUEUE = ROOT / "benchmarks" / "queue"


def queue_lines() -> list[tuple[str, list[str]]]:
    out = subprocess.run([sys.executable, str(QUEUE / "make_jobs.py")], capture_output=True, text=True, check=True)
    return [(line.split()[0], line.split()[1:]) for line in out.stdout.splitlines() if line.strip()]


def parameters(chapter: str) -> dict:
    """The defaults of a chapter's papermill `parameters` cell."""
    return chapter_parameters(next(ROOT.joinpath("notebooks").glob(f"{chapter}_*.py")))


@pytest.fixture(scope="module")
def queue_keys() -> set[str]:
    keys = set()
    for _, args in queue_lines():
        if args[0] == "evaluate" and "--teacher" not in args:
            keys.add(run_key(_config(build_parser().parse_args(args))))
    return keys


def test_every_line_parses_as_the_worker_runs_it():
    lines = queue_lines()
    names = [name for name, _ in lines]
    assert len(names) == len(set(names)), "job names must be unique (each names its log file)"
    for name, args in lines:
        extra = ["--no-build", "--out", "/tmp/x"] if args[0] == "book" else ["--quiet"]
        parsed = build_parser().parse_args(args + extra)
        if args[0] == "evaluate":
            cfg = _config(parsed)
            assert cfg.profile == "cpu", name
    assert lines[-1][1][0] == "book", "chapters that compute beyond the queue's runs come last"


def test_chapters_default_runs_are_all_queued(queue_keys):
    def key(preset: str, student: str, seed: int, **over) -> str:
        return run_key(make_config("cpu", preset, overrides=dict(student=student, seed=seed, **over)))

    needed = {}
    p6 = parameters("06")
    first, *others = p6["students"]
    for st in p6["students"]:
        needed.update({f"ch06 {m} {st}": key(m, st, p6["seed"]) for m in p6["methods"]})
    for s in p6["seeds"]:
        needed.update({f"ch06 {m} s{s}": key(m, first, s) for m in ("ferd", "dfrd_plain")})
    for st in others:
        for s in p6["seeds_other"]:
            needed.update({f"ch06 {m} {st} s{s}": key(m, st, s) for m in ("ferd", "dfrd_plain")})
    p7 = parameters("07")
    for s in p7["seeds"]:
        needed.update({f"ch07 {m} s{s}": key(m, p7["student"], s) for m in p7["presets"] + p7["extra_presets"]})
    p5 = parameters("05")
    needed.update({f"ch05 gamma {g}": key(p5["preset"], p5["student"], p5["seed"], gamma=g)
                   for g in p5["gamma_grid"]})
    p3 = parameters("03")
    needed.update({f"ch03 tau {t}": key(p3["preset"], p3["student"], p3["seed"], class_weight_tau=t)
                   for t in p3["tau_grid"]})
    needed[f"ch03 {p3['compare_preset']}"] = key(p3["compare_preset"], p3["student"], p3["seed"])
    needed.update({f"ch03 probe s{s}": key(p3["preset"], p3["student"], s) for s in p3["probe_seeds"]})
    p8 = parameters("08")
    needed.update({f"ch08 released s{s}": key("ferd_released", "fmnist-resnet", s) for s in p8["released_seeds"]})
    missing = sorted(name for name, k in needed.items() if k not in queue_keys)
    assert not missing, f"runs the chapters read but the queue does not train: {missing}"


def test_times_reads_finished_jobs_and_marks_resumed_ones(tmp_path):
    times = runpy.run_path(str(QUEUE / "times.py"))
    (tmp_path / "worker1.log").write_text("10:00:00 start a_s0\n10:30:00 end a_s0 rc=0\n10:30:00 start b_s0\n"
                                          "11:00:00 start b_s0\n11:10:00 end b_s0 rc=0\n11:10:00 start c_s0\n"
                                          "11:20:00 end c_s0 rc=1\n")
    (tmp_path / "a_s0.log").write_text("...\n1800.50 s wall\n")
    (tmp_path / "b_s0.log").write_text("...\n600.00 s wall\n")
    (tmp_path / "c_s0.log").write_text("Traceback\n")
    rows = {r["job"]: r for r in times["finished_jobs"](tmp_path)}
    assert set(rows) == {"a_s0", "b_s0"}  # the failed job is not a finished one
    assert rows["a_s0"]["attempts"] == 1 and rows["a_s0"]["wall_s"] == 1800.5
    assert rows["b_s0"]["attempts"] == 2
    table = times["main"](tmp_path)
    assert "600 (last attempt)" in table and "| `a` | 1 | 1800 |" in table  # medians use uninterrupted jobs only


def test_times_names_the_cpus_a_job_ran_on(tmp_path):
    """A run resumed on another kind of CPU is trained by two: the table lists both, and old lines without a CPU
    still parse."""
    times = runpy.run_path(str(QUEUE / "times.py"))
    (tmp_path / "worker1.log").write_text("10:00:00 start a_s0 on Intel Xeon\n10:05:00 start a_s0 on AMD EPYC\n"
                                          "10:30:00 end a_s0 rc=0\n10:30:00 start b_s0\n11:00:00 end b_s0 rc=0\n")
    for name in ("a_s0", "b_s0"):
        (tmp_path / f"{name}.log").write_text("600.00 s wall\n")
    rows = {r["job"]: r for r in times["finished_jobs"](tmp_path)}
    assert rows["a_s0"]["cpu"] == "Intel Xeon + AMD EPYC" and rows["a_s0"]["attempts"] == 2
    assert rows["b_s0"]["cpu"] == ""
    assert "| `b_s0` | 1 | 600 | not logged |" in times["main"](tmp_path)


def test_status_reads_the_store_without_training(tmp_path):
    from ferd.book.experiments import eval_path
    from ferd.method.runs import run_dir
    from ferd.toolkit.artifacts import ArtifactStore

    status = runpy.run_path(str(QUEUE / "status.py"))
    store = ArtifactStore(tmp_path)
    name, args = queue_lines()[0]
    assert not status["job_done"](args, store), "an empty store has nothing done"
    cfg = _config(build_parser().parse_args(args))
    key = run_key(cfg)
    final = run_dir(cfg, store, key) / "final.pt"
    final.parent.mkdir(parents=True, exist_ok=True)
    final.touch()
    assert not status["job_done"](args, store), "a run without its evaluation tables is pending"
    for attack in cfg.attack.attacks:
        path = eval_path(cfg, "student-final", key, attack, store)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    assert status["job_done"](args, store), name
    assert not status["job_done"](["book", "--profile", "cpu", "--only", "03"], store)


def test_finish_refuses_a_tree_with_uncommitted_changes(tmp_path):
    """The book's executed chapters must not carry a '+dirty' provenance, so the last step stops before executing."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.txt").write_text("1")
    subprocess.run(git + ["add", "a.txt"], cwd=tmp_path, check=True)
    subprocess.run(git + ["commit", "-qm", "a"], cwd=tmp_path, check=True)
    (tmp_path / "a.txt").write_text("2")
    done = subprocess.run(["bash", str(QUEUE / "finish.sh")], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1 and "uncommitted changes" in done.stderr, done.stderr


def test_chapter6_autoattack_tables_are_the_queues(tmp_path):
    """AutoAttack is most of the queue's evaluation cost: chapter 6 must read exactly the tables the queue's AA
    jobs write (same run, same attack scope, same number of images per class), or the book would attack again."""
    from ferd.book.experiments import eval_path
    from ferd.toolkit.artifacts import ArtifactStore

    store = ArtifactStore(tmp_path)

    def aa_table(cfg) -> str:
        return str(eval_path(cfg, "student-final", run_key(cfg), "aa", store))

    queued = {aa_table(_config(build_parser().parse_args(args))) for _, args in queue_lines()
              if args[0] == "evaluate" and "attack.attacks=aa" in args}
    p6 = parameters("06")
    first, *others = p6["students"]
    needed = {}
    for st in p6["students"]:
        for m in p6["aa_methods"]:
            for s in p6["seeds"] if st == first else p6["seeds_other"]:
                n = p6["aa_headline_per_class"] if s == p6["seed"] else p6["aa_seed_per_class"]
                cfg = make_config("cpu", m, overrides={"student": st, "seed": s, "attack.aa_per_class": n})
                needed[f"{m} {st} s{s} ({n}/class)"] = aa_table(cfg)
    missing = sorted(name for name, path in needed.items() if path not in queued)
    assert not missing, f"AutoAttack tables chapter 6 reads but the queue does not compute: {missing}"


def test_chapters_read_the_teacher_tables_of_the_teacher_job(tmp_path):
    """Chapters 1, 2, 3 and 6 evaluate the teacher with their own configurations; the teacher's key ignores the
    student and the distillation, so each must land on the teacher job's tables (AutoAttack included)."""
    from ferd.book.experiments import eval_path
    from ferd.toolkit.artifacts import ArtifactStore

    store = ArtifactStore(tmp_path)
    args = next(args for name, args in queue_lines() if name == "teacher")
    job = _config(build_parser().parse_args(args))
    made = {str(eval_path(job, "teacher", job.key("teacher"), a, store)) for a in job.attack.attacks}
    for preset in ("ferd", "dfrd_plain"):
        for student in ("fmnist-resnet", "fmnist-mobilenet"):
            cfg = make_config("cpu", preset, overrides={"student": student, "seed": 0})
            for attack in cfg.attack.attacks:
                path = str(eval_path(cfg, "teacher", cfg.key("teacher"), attack, store))
                assert path in made, f"{preset} {student}: the teacher's {attack} table is not the teacher job's"


def test_the_cost_report_groups_every_queue_job_by_what_it_computes():
    cost = runpy.run_path(str(QUEUE / "book_cost.py"), run_name="book_cost")
    groups, group = cost["GROUPS"], cost["group"]
    prefix = {name: groups[group(name)][0] for name, _ in queue_lines()}
    assert prefix["aa100_ferd_fmnist-resnet_s0"] == "aa"
    assert prefix["ferd_no_fae_fmnist-resnet_s1"] == "ferd_no_"
    assert prefix["ferd_released_fmnist-resnet_s2"] == "ferd_released"
    assert prefix["ferd_fmnist-mobilenet_s2"] == "ferd_"
    assert prefix["dfard_fmnist-resnet_s0"] == "" and prefix["rslad_fmnist-mobilenet_s0"] == ""
    assert prefix["ch08_book"] == "ch" and prefix["teacher"] == "teacher"
    # each group's chapters are named, and every job lands in a group whose description is not empty
    assert all(groups[group(name)][1] and groups[group(name)][2] for name in prefix)


def test_time_left_prices_each_pending_job_at_its_kind_then_its_family_then_all():
    status = runpy.run_path(str(QUEUE / "status.py"))
    finished = [{"job": "ferd_fmnist-resnet_s0", "attempts": 1, "wall_s": 3000.0},
                {"job": "ferd_fmnist-resnet_s1", "attempts": 1, "wall_s": 3200.0},
                {"job": "ferd_fmnist-resnet_s2", "attempts": 2, "wall_s": 100.0},  # resumed: not a price
                {"job": "aa100_dfrd_plain_fmnist-resnet_s0", "attempts": 1, "wall_s": 900.0},
                {"job": "ch08_book", "attempts": 1, "wall_s": 400.0}]
    left = status["core_seconds_left"]
    assert left(["ferd_fmnist-resnet_s3"], finished) == 3100.0  # its kind's median
    assert left(["aa100_ferd_fmnist-mobilenet_s1"], finished) == 900.0  # its family, 'aa100'
    assert left(["ferd_no_fae_fmnist-resnet_s0"], finished) == 3100.0  # family 'ferd'
    assert left(["dfard_fmnist-resnet_s0"], finished) == statistics.median([3000.0, 3200.0, 900.0, 400.0])
    assert left(["ch08_book"], finished) == 0.0  # a chapter job that ran once only re-reads the store
