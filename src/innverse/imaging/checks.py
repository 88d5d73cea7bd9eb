"""Input checks for image batches, with messages that say what was wrong (grayscale vs colour, size, dtype)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

__all__ = ["check_images"]

_KIND = {1: "1-channel (grayscale)", 3: "3-channel (colour)"}


def _kind(channels: int) -> str:
    return _KIND.get(channels, f"{channels}-channel")


def check_images(owner: str, x: object, shape: Sequence[int], name: str = "images") -> None:
    """Raise a clear error unless ``x`` is a batch ``(B, *shape)`` of images ``shape = (C, H, W)``.

    Raises:
        TypeError: not a tensor.
        ValueError: wrong number of dimensions, channels (grayscale given to a colour model and
            the like) or spatial size.
    """
    shape = tuple(int(s) for s in shape)
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner}: expected the {name} as a torch.Tensor of shape (batch, {', '.join(map(str, shape))}), "
                        f"got {type(x).__name__}")
    if x.dim() != len(shape) + 1:
        hint = " (add the channel dimension: x[:, None])" if x.dim() == len(shape) and shape[0] == 1 else ""
        raise ValueError(f"{owner}: expected {name} of shape (batch, {', '.join(map(str, shape))}), "
                         f"got shape {tuple(x.shape)}{hint}")
    if len(shape) == 3 and x.shape[1] != shape[0]:
        raise ValueError(f"{owner}: this model takes {_kind(shape[0])} {name} of shape (batch, "
                         f"{', '.join(map(str, shape))}), got {_kind(x.shape[1])} {name} of shape {tuple(x.shape)}")
    if tuple(x.shape[1:]) != shape:
        raise ValueError(f"{owner}: expected {name} of shape (batch, {', '.join(map(str, shape))}), "
                         f"got shape {tuple(x.shape)}")
