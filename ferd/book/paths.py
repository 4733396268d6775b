"""Where the book's outputs go: the repository root, and the `figures`/`results` folders of a profile."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository (ferd/book/paths.py -> ../../..)


def output_dir(kind: str, profile: str) -> Path:
    """Where a chapter writes `figures` or `results`: the repo folders for cpu/paper, a scratch folder for smoke.

    `$FERD_OUTPUT` overrides the root (the tests point it at a temporary folder).
    """
    base = os.environ.get("FERD_OUTPUT")
    if base:
        root = Path(base)
    elif profile == "smoke":
        root = Path(tempfile.gettempdir()) / "ferd-smoke"
    else:
        root = ROOT
    # not created here: writers create it (atomically) when they first save, so a chapter whose parameters
    # fail validation leaves nothing on disk
    return root / kind / "paper" if profile == "paper" else root / kind
