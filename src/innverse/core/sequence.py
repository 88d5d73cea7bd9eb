"""Sequential composition of invertible modules."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

from torch import Tensor, nn

from .module import AbstractInvertible, Context, add_log_det

__all__ = ["Sequence"]


class Sequence(AbstractInvertible):
    r"""A chain of invertible modules, itself invertible.

    .. math::
        y = f_K \circ \dots \circ f_1(x), \qquad
        \log|\det J| = \sum_k \log|\det J_{f_k}|.

    Every block that declares a ``context_shape`` receives the same condition ``c``; blocks
    without one receive ``None``. All conditioned blocks must agree on the condition shape.

    Args:
        blocks: the modules, in forward order; the output shape of each must be the event
            shape of the next.
    """

    def __init__(self, *blocks: AbstractInvertible | Iterable[AbstractInvertible]) -> None:
        if len(blocks) == 1 and not isinstance(blocks[0], AbstractInvertible):
            blocks = tuple(blocks[0])  # type: ignore[arg-type]
        if not blocks:
            raise ValueError("Sequence: needs at least one block")
        for i, b in enumerate(blocks):
            if not isinstance(b, AbstractInvertible):
                raise TypeError(
                    f"Sequence: block {i} ({type(b).__name__}) is not an invertible module"
                )
        for i, (a, b) in enumerate(itertools.pairwise(blocks)):
            if a.output_shape != b.event_shape:
                raise ValueError(
                    f"Sequence: block {i} ({type(a).__name__}) outputs shape {a.output_shape} "
                    f"but block {i + 1} ({type(b).__name__}) expects {b.event_shape}"
                )
        for i, b in enumerate(blocks):
            if b.conditional and b.context_shape is None:
                raise ValueError(
                    f"Sequence: block {i} ({type(b).__name__}) takes several conditions; "
                    "compose it in a Graph instead"
                )
        shapes = {b.context_shape for b in blocks if b.context_shape is not None}
        if len(shapes) > 1:
            raise ValueError(f"Sequence: conditioned blocks disagree on the context shape: {shapes}")
        context_shape = shapes.pop() if shapes else None
        super().__init__(blocks[0].event_shape, context_shape, blocks[-1].output_shape)
        self.blocks = nn.ModuleList(blocks)
        self.exact_inverse = all(b.exact_inverse for b in blocks)
        self._conditioned = [b.conditional for b in blocks]

    def __len__(self) -> int:
        return len(self.blocks)

    def __iter__(self) -> Iterator[AbstractInvertible]:
        return iter(self.blocks)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> AbstractInvertible:
        return self.blocks[i]  # type: ignore[return-value]

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        total = None
        for block, cond in zip(self.blocks, self._conditioned):
            x, ld = block._forward(x, c if cond else None, log_det)
            if log_det:
                total = add_log_det(total, ld)
        return x, total

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        total = None
        for block, cond in zip(reversed(self.blocks), reversed(self._conditioned)):
            y, ld = block._inverse(y, c if cond else None, log_det)
            if log_det:
                total = add_log_det(total, ld)
        return y, total
