"""The book runner: execute every chapter notebook with papermill, then build the Jupyter Book.

    python -m ferd book --profile cpu            # whole book
    python -m ferd book --only 05 --profile cpu  # one chapter
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
    out = root / kind / "paper" if profile == "paper" else root / kind
    out.mkdir(parents=True, exist_ok=True)
    return out
