"""Image grids: a batch of images laid out in rows and columns, as an array or a PNG file (matplotlib, imported lazily)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["image_grid", "save_image_grid"]


def image_grid(images: Tensor, columns: int | None = None, *, value_range: tuple[float, float] = (0.0, 1.0),
               pad: int = 1, scale: int = 1) -> np.ndarray:
    """Lay out ``images`` as one array ``(H', W')`` (grayscale) or ``(H', W', 3)`` (colour), values in ``[0, 1]``.

    Args:
        images: ``(N, C, H, W)`` with ``C`` 1 or 3, or ``(rows, columns, C, H, W)``.
        columns: images per row for ``(N, C, H, W)`` (default: about ``sqrt(N)``).
        value_range: values mapped to black and white (clipped).
        pad: pixels of white padding between images.
        scale: integer upscaling (nearest neighbour), e.g. for 8x8 digits.
    """
    if images.dim() == 5:
        columns = images.shape[1]
        images = images.reshape(-1, *images.shape[2:])
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"image_grid: expected images (N, C, H, W) or (rows, columns, C, H, W) with C = 1 or 3, "
                         f"got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    columns = columns or max(1, round(n**0.5))
    rows = -(-n // columns)
    lo, hi = value_range
    x = ((images.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
    if scale > 1:
        x = x.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
        h, w = h * scale, w * scale
    grid = torch.ones(c, rows * (h + pad) + pad, columns * (w + pad) + pad)
    for i in range(n):
        r, col = divmod(i, columns)
        grid[:, pad + r * (h + pad):pad + r * (h + pad) + h, pad + col * (w + pad):pad + col * (w + pad) + w] = x[i]
    out = grid.permute(1, 2, 0).numpy()
    return out[..., 0] if c == 1 else out


def save_image_grid(images: Tensor, path: str | Path, columns: int | None = None, *,
                    value_range: tuple[float, float] = (0.0, 1.0), pad: int = 1, scale: int = 1) -> Path:
    """Write :func:`image_grid` of ``images`` (same arguments) to a PNG file (needs matplotlib); returns the path."""
    import matplotlib.image

    grid = image_grid(images, columns, value_range=value_range, pad=pad, scale=scale)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    matplotlib.image.imsave(path, grid, cmap="gray" if grid.ndim == 2 else None, vmin=0.0, vmax=1.0)
    return path
