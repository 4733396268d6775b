"""Two processes asking for the same artifact at once: one computes, the other waits and reuses it.

Computations are counted in a file that the (wrapped) compute functions append to, one line per call.
"""
from __future__ import annotations

import multiprocessing
import sys
import time

import pandas as pd
import torch

from ferd.toolkit import artifacts

from .support import REPO, TINY_ARGS, env, weights

# `ferd distill` with the teacher's training and each distillation epoch counted in $FERD_TEST_COUNTER
_COUNTED_CLI = """
import os, sys
from ferd.cli import main
import ferd.method.teachers
distill = sys.modules["ferd.method.distill"]  # `ferd.method.distill` the attribute is the run function (ferd/__init__.py)

def counted(name, fn):
    def inner(*a, **k):
        with open(os.environ["FERD_TEST_COUNTER"], "a") as f:
            f.write(f"{os.getpid()} {name}\\n")
        return fn(*a, **k)
    return inner

ferd.method.teachers._train = counted("teacher", ferd.method.teachers._train)
distill.Distiller.train_epoch = counted("epoch", distill.Distiller.train_epoch)
sys.exit(main(sys.argv[1:]))
"""


def test_two_distill_processes_with_one_config_compute_once(tmp_path, reference):
    """An empty store: both need the teacher and the run; each is computed by exactly one process."""
    import subprocess

    root, counter = tmp_path / "store", tmp_path / "counter.txt"
    argv = [sys.executable, "-c", _COUNTED_CLI, "distill", "--profile", "smoke", "--artifacts", str(root),
            "--quiet", *TINY_ARGS]
    e = env(FERD_TEST_COUNTER=str(counter))
    procs = [subprocess.Popen(argv, cwd=REPO, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    assert outs[0][0] == outs[1][0]  # same summary printed by both
    lines = [line.split() for line in counter.read_text().splitlines()]
    assert [n for _, n in lines].count("teacher") == 1, lines
    epochs = [pid for pid, n in lines if n == "epoch"]
    assert len(epochs) == 4 and len(set(epochs)) == 1, lines  # one process ran all 4 epochs
    rd = next((root / "run").iterdir())
    for name in ("final.pt", "checkpoint.pt", "history.csv", "config.json"):
        assert artifacts.is_valid(rd / name), name
    assert not list(root.rglob(".*.tmp"))
    final = artifacts.load_torch(rd / "final.pt")  # and it is the uninterrupted reference result
    assert torch.equal(weights(final["student"]), weights(reference["student"]))


def _ask(path: str, counter: str, out: str) -> None:
    def compute() -> pd.DataFrame:
        with open(counter, "a") as f:
            f.write("computed\n")
        time.sleep(1.0)  # long enough for the other process to arrive and wait
        return pd.DataFrame({"class_index": list(range(10)), "accuracy": [i / 10 for i in range(10)]})

    df = artifacts.get_or_compute(path, compute, artifacts.save_frame, artifacts.load_frame)
    df.to_csv(out, index=False)


def test_two_get_or_compute_processes_compute_once(tmp_path):
    ctx = multiprocessing.get_context("fork")  # no re-import of torch; the children only do file work
    path, counter = tmp_path / "eval" / "k" / "pgd.csv", tmp_path / "counter.txt"
    procs = [ctx.Process(target=_ask, args=(str(path), str(counter), str(tmp_path / f"out{i}.csv")))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert counter.read_text() == "computed\n"
    a, b = (pd.read_csv(tmp_path / f"out{i}.csv") for i in range(2))
    assert a.equals(b) and artifacts.is_valid(path)
