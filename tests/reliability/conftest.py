"""Fixtures of the reliability suite (helpers live in support.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from .support import tiny_config


@pytest.fixture(scope="session")
def teacher_root(smoke_store, smoke_teacher) -> Path:
    """The session store holding the smoke teacher (trained once, in-process, by tests/conftest.py)."""
    return Path(smoke_store.root)


@pytest.fixture(scope="session")
def reference(tmp_path_factory, smoke_teacher):
    """An uninterrupted TINY run with seed 0 (in-process): final weights, history, run directory."""
    from ferd.method.methods import run
    from ferd.toolkit import artifacts

    store = artifacts.ArtifactStore(tmp_path_factory.mktemp("reference"))
    res = run(tiny_config(), teacher=smoke_teacher, store=store, progress=False)
    final = artifacts.load_torch(res.run_dir / "final.pt")
    return {"final": final, "student": final["student"], "history": final["history"], "run_dir": res.run_dir,
            "key": res.key}
