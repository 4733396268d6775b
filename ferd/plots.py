"""One figure style for the whole project; figures saved as PNG (web) and PDF (print) under `figures/`.

Colour-blind-safe palette (seaborn "colorblind"); every plotting helper returns the matplotlib Figure.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import matplotlib

matplotlib.use("Agg")  # headless: tests, papermill and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

PALETTE = "colorblind"


def set_style() -> None:
    """Apply the project's matplotlib/seaborn style (call once per notebook)."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "axes.titleweight": "bold", "figure.autolayout": False})


def save_figure(fig: plt.Figure, name: str, folder: str | Path = "figures",
                formats: Iterable[str] = ("png", "pdf")) -> list[Path]:
    """Save `fig` as `<folder>/<name>.<fmt>` for each format (atomically per file); return the paths."""
    from ferd.artifacts import write_atomic
    import io

    out = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt)
        path = Path(folder) / f"{name}.{fmt}"
        write_atomic(path, buf.getvalue())
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)  # figures are git-tracked, no sidecar
        out.append(path)
    return out


def image_grid(x: torch.Tensor, nrow: int = 8) -> np.ndarray:
    """Tile images [N, C, H, W] in [0, 1] into one array [rows*H, nrow*W, C] for imshow."""
    from torchvision.utils import make_grid

    grid = make_grid(x.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=1, pad_value=1.0)
    return grid.permute(1, 2, 0).numpy()


def save_image_grid(x: torch.Tensor, path: str | Path, nrow: int = 8) -> Path:
    """Save a grid of synthetic samples as PNG (used every `snapshot_every` epochs)."""
    import io
    from ferd.artifacts import write_atomic

    arr = image_grid(x, nrow)
    fig, ax = plt.subplots(figsize=(nrow * 0.6, max(1, arr.shape[0] / arr.shape[1] * nrow * 0.6)))
    ax.imshow(arr.squeeze(-1) if arr.shape[-1] == 1 else arr, cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    write_atomic(Path(path), buf.getvalue())
    return Path(path)
