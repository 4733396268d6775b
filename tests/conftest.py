"""Shared fixtures: a temporary artifact store and a smoke-profile teacher trained once per session."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def smoke_store(tmp_path_factory):
    """One artifact store for the whole session, so the smoke teacher is trained once."""
    from ferd.toolkit.artifacts import ArtifactStore

    return ArtifactStore(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="session")
def smoke_teacher(smoke_store):
    from ferd.config import make_config
    from ferd.method.teachers import train_teacher

    cfg = make_config("smoke", "ferd")
    model, _ = train_teacher(cfg, smoke_store, progress=False)
    return model
