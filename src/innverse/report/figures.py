"""Figures as ``data:`` URIs, so a report embeds them instead of linking files."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

__all__ = ["figure_to_data_uri", "file_to_data_uri"]

_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def figure_to_data_uri(fig: Any, fmt: str = "png", dpi: int = 110, close: bool = True) -> str:
    """Render a matplotlib Figure to a base64 ``data:`` URI (PNG or SVG); a pyplot figure is closed (``close``)."""
    if fmt not in ("png", "svg"):
        raise ValueError(f"figure_to_data_uri: fmt must be 'png' or 'svg', got {fmt!r}")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", facecolor="white",
                metadata={"Software": None} if fmt == "png" else {"Creator": None, "Date": None})
    if close and getattr(fig.canvas, "manager", None) is not None:  # a pyplot figure: release it
        import matplotlib.pyplot as plt

        plt.close(fig)
    mime = _MIME["." + fmt]
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def file_to_data_uri(path: str | os.PathLike[str]) -> str:
    """Embed an image file (PNG, SVG, JPEG) as a base64 ``data:`` URI."""
    path = Path(path)
    mime = _MIME.get(path.suffix.lower())
    if mime is None:
        raise ValueError(f"file_to_data_uri: {path} is not a PNG, SVG or JPEG image")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")
