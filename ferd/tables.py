"""Our numbers beside the paper's: the paper-numbers file, result tables and their provenance labels."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ferd import artifacts
from ferd.book import output_dir


def save_results(df: pd.DataFrame, name: str, profile: str) -> Path:
    """Write a result table as `<results dir>/<name>.csv` (atomically; no checksum sidecar: it is git-tracked)."""
    path = output_dir("results", profile) / f"{name}.csv"
    artifacts.write_atomic(path, df.to_csv(index=False).encode())
    path.with_name(path.name + ".sha256").unlink(missing_ok=True)
    return path
