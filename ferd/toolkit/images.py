"""Image grids of samples: an array for plotting, and a PNG written atomically (no plotting library needed)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ferd.toolkit.artifacts import write_atomic


def image_grid(x: torch.Tensor, nrow: int = 8) -> np.ndarray:
    """Tile images [N, C, H, W] in [0, 1] into one array [rows*H, nrow*W, C] for imshow."""
    from torchvision.utils import make_grid

    grid = make_grid(x.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=1, pad_value=1.0)
    return grid.permute(1, 2, 0).numpy()


def save_image_grid(x: torch.Tensor, path: str | Path, nrow: int = 8, scale: int = 2) -> Path:
    """Save a grid of synthetic samples as a PNG (a run writes one every `snapshot_every` epochs)."""
    arr = (image_grid(x, nrow) * 255).round().astype(np.uint8)
    img = Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    write_atomic(Path(path), buf.getvalue())
    return Path(path)
