"""`experiments.prefetch`: missing runs trained and evaluated in worker processes, the same as in-process."""
from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from ferd.book import experiments
from ferd.config import make_config
from ferd.errors import TrainingError
from ferd.method.methods import run_key
from ferd.toolkit import artifacts


def _cfg(preset: str, **kw):
    attacks = {"attack.attacks": ("clean", "pgd")}
    return make_config("smoke", preset, overrides={"student": "fmnist-resnet", **attacks, **kw})


def test_prefetch_trains_and_evaluates_what_is_missing_once(tmp_path):
    store = artifacts.ArtifactStore(tmp_path)
    cfgs = [_cfg("ferd"), _cfg("dfrd_plain"), _cfg("ferd")]  # the duplicate forms one task with the first
    assert all(experiments.pending(c, store=store) for c in cfgs)
    seconds = experiments.prefetch(cfgs, jobs=2, store=store, progress=False)
    assert set(seconds) == {run_key(c) for c in cfgs} and all(s > 0 for s in seconds.values())
    assert not any(experiments.pending(c, store=store) for c in cfgs)
    assert experiments.prefetch(cfgs, jobs=2, store=store, progress=False) == {}  # all cached now
    # the cached table is what an in-process evaluation of the cached student gives
    res = experiments.distill(cfgs[1], store, progress=False)
    direct = experiments.evaluate_model(cfgs[1], res.student, "student-final", res.key,
                                        artifacts.ArtifactStore(tmp_path / "fresh"), progress=False)
    cached = experiments.evaluate_student(cfgs[1], store=store, progress=False)
    assert cached["accuracy"].tolist() == pytest.approx(direct["accuracy"].tolist())


def test_worker_run_matches_an_in_process_run_with_one_thread(tmp_path):
    """A worker trains with one thread; the same run in this process with one thread gives the same student."""
    a, b = artifacts.ArtifactStore(tmp_path / "a"), artifacts.ArtifactStore(tmp_path / "b")
    cfgs = [_cfg("ferd", epochs=2), _cfg("dfrd_plain", epochs=2)]
    experiments.prefetch(cfgs, evaluate=False, jobs=2, store=a, progress=False)
    shutil.copytree(tmp_path / "a" / "teacher", tmp_path / "b" / "teacher")  # the same teacher (trained here)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = experiments.distill(cfgs[0], b, progress=False).student.state_dict()
    finally:
        torch.set_num_threads(threads)
    there = experiments.distill(cfgs[0], a, progress=False).student.state_dict()
    assert all(torch.equal(here[k], there[k]) for k in here)


def test_one_job_or_one_task_leaves_the_work_to_the_caller(tmp_path):
    store = artifacts.ArtifactStore(tmp_path)
    assert experiments.prefetch([_cfg("ferd"), _cfg("dfrd_plain")], jobs=1, store=store, progress=False) == {}
    assert experiments.prefetch([_cfg("ferd")], jobs=2, store=store, progress=False) == {}
    assert not (tmp_path / "run").exists()  # nothing trained, not even a teacher


def test_default_jobs_follow_env_threads_and_device(monkeypatch):
    monkeypatch.setenv("FERD_JOBS", "3")
    assert experiments.default_jobs(_cfg("ferd")) == 3
    monkeypatch.delenv("FERD_JOBS")
    assert experiments.default_jobs(_cfg("ferd")) == torch.get_num_threads()
    on_gpu = dataclasses.replace(_cfg("ferd"), device="cuda")  # as resolved on a GPU machine (not validated here)
    assert experiments.default_jobs(on_gpu) == 1


def test_costlier_methods_are_estimated_costlier():
    assert experiments.estimated_cost(_cfg("derd")) > experiments.estimated_cost(_cfg("ferd")) \
        > experiments.estimated_cost(_cfg("dfhl"))


def test_a_failing_task_is_named_after_the_others_finish(tmp_path):
    store = artifacts.ArtifactStore(tmp_path)
    good, bad = _cfg("dfrd_plain", epochs=2), _cfg("ferd", epochs=2, student="resnet18")  # 3-channel stem
    with pytest.raises(TrainingError, match="ferd/resnet18.*channels"):
        experiments.prefetch([good, bad], evaluate=False, jobs=2, store=store, progress=False)
    assert not experiments.pending(good, evaluate=False, store=store)


def test_workers_die_with_their_parent(tmp_path):
    """A killed notebook kernel must not leave prefetch workers training on the cores."""
    import subprocess
    import sys
    import time

    import psutil

    script = (
        "from ferd.book import experiments\nfrom ferd.toolkit import artifacts\n"
        "from ferd.config import make_config\n"
        "cfgs = [make_config('smoke', p, overrides={'epochs': 40}) for p in ('ferd', 'dfrd_plain')]\n"
        f"experiments.prefetch(cfgs, jobs=2, store=artifacts.ArtifactStore({str(tmp_path)!r}), progress=False)\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(list((tmp_path / "run").glob("*/checkpoint.pt"))) < 2:
            time.sleep(0.5)  # the teacher first (in the parent), then both workers write their first epoch
        workers = [c for c in psutil.Process(parent.pid).children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]
        assert len(workers) == 2, "the two workers did not start"
    finally:
        parent.kill()
        parent.wait()
    gone, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, f"workers still running after their parent was killed: {[p.pid for p in alive]}"
