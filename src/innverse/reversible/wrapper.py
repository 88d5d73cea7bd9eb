"""Memory-saving training of exactly invertible compositions: the :class:`Reversible` wrapper."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from ..core.module import AbstractInvertible, Context
from ..core.sequence import Sequence
from .function import Plan, ReversibleFunction, Step

__all__ = ["Reversible"]

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def _flatten(seq: Sequence, prefix: str = "") -> list[tuple[str, AbstractInvertible]]:
    out: list[tuple[str, AbstractInvertible]] = []
    for i, b in enumerate(seq):
        name = f"{prefix}{i}"
        if isinstance(b, Sequence):
            out += _flatten(b, f"{name}.")
        else:
            out.append((name, b))
    return out


class Reversible(AbstractInvertible):
    r"""A :class:`~innverse.core.Sequence` trained without storing intermediate activations.

    The same map, log-det and gradients as the wrapped sequence, but the backward pass
    recomputes each block's input from its output with the block's exact inverse instead of
    keeping it from the forward pass (see :mod:`innverse.reversible.function`). Activation
    memory is that of one block instead of all of them, for about one extra inverse and one
    extra forward per block. Both directions are memory-saving: :meth:`inverse` (sampling
    with gradients, e.g. reverse-KL training) reconstructs with the blocks' forward maps.

    Only blocks with ``exact_inverse = True`` are accepted (couplings, permutations, ActNorm,
    LU, reshapes, graphs of those); anything else, e.g. an iteratively inverted
    :class:`~innverse.blocks.ResidualBlock`, is refused at construction. Nested sequences are
    flattened into single blocks.

    Caveats: ActNorm's data-dependent initialisation happens in the (graph-free) forward pass
    and is therefore seen by the recomputation; layers that update running statistics in
    training (batch norm) would update them twice; random draws inside a block (dropout)
    are replayed from the generator state saved before the block's forward (for CPU and the
    input's CUDA device), so the block's inverse must draw them in the same order as its
    forward, as a coupling with a dropout subnet does. Higher-order gradients through the
    memory-saving path are not supported.

    Numerics: the reconstruction is exact up to round-off, but round-off is amplified by the
    inverse's Lipschitz constant (up to :math:`e^{\alpha}` per affine coupling with clamp
    :math:`\alpha`), so in float32 deep stacks of strongly contracting blocks can give gradients
    that differ from ordinary backprop by more than 1e-5 (relative). ``checkpoint_every=k`` also
    keeps the input of every k-th block, which bounds that error growth to k blocks at the cost
    of memory for ``depth / k`` block inputs.

    Args:
        blocks: a :class:`~innverse.core.Sequence`, or the blocks of one.
        preserve_rng_state: save/replay generator states: ``None`` (default) for blocks
            containing dropout layers, ``True`` for all blocks, ``False`` for none.
        checkpoint_every: keep the input of every k-th block (None: keep none but the output).

    References:
        Gomez, Ren, Urtasun, Grosse. "The Reversible Residual Network: Backpropagation Without
        Storing Activations". NeurIPS 2017; Jacobsen, Smeulders, Oyallon. "i-RevNet: Deep
        Invertible Networks". ICLR 2018.
    """

    def __init__(self, *blocks: AbstractInvertible | Sequence | Iterable[AbstractInvertible],
                 preserve_rng_state: bool | None = None, checkpoint_every: int | None = None) -> None:
        if len(blocks) == 1 and isinstance(blocks[0], Sequence):
            seq = blocks[0]
        else:
            if len(blocks) == 1 and not isinstance(blocks[0], AbstractInvertible):
                blocks = tuple(blocks[0])  # type: ignore[arg-type]
            if len(blocks) == 1 and isinstance(blocks[0], AbstractInvertible):
                seq = Sequence(blocks[0])
            else:
                seq = Sequence(*blocks)  # type: ignore[arg-type]
        flat = _flatten(seq)
        for name, b in flat:
            if not b.exact_inverse:
                raise ValueError(
                    f"Reversible: block {name} ({type(b).__name__}) has no exact inverse "
                    "(exact_inverse=False), so its input cannot be reconstructed from its output "
                    "to round-off; keep it outside the Reversible wrapper")
            if isinstance(b, Reversible):
                raise ValueError(f"Reversible: block {name} is itself Reversible; wrap the inner "
                                 "sequence's blocks directly")
        if checkpoint_every is not None and checkpoint_every < 1:
            raise ValueError(f"Reversible: checkpoint_every must be >= 1 or None, got {checkpoint_every}")
        super().__init__(seq.event_shape, seq.context_shape, seq.output_shape)
        self.sequence = seq
        self.checkpoint_every = checkpoint_every
        self.preserve_rng_state = preserve_rng_state
        self._flat = flat  # plain list: the modules are registered through self.sequence
        self.exact_inverse = True

    def _stochastic(self, block: AbstractInvertible) -> bool:
        if self.preserve_rng_state is not None:
            return self.preserve_rng_state
        return any(isinstance(m, _DROPOUT) and m.training for m in block.modules())

    def _run(self, x: Tensor, c: Context, log_det: bool, forward: bool) -> tuple[Tensor, Tensor | None]:
        params = [p for p in self.sequence.parameters() if p.requires_grad]
        ctx_grad = isinstance(c, Tensor) and c.requires_grad
        if not (torch.is_grad_enabled() and (x.requires_grad or ctx_grad or params)):
            run = self.sequence._forward if forward else self.sequence._inverse
            return run(x, c, log_det)
        index = {id(p): i for i, p in enumerate(params)}
        steps = [Step(b, b.conditional, [index[id(p)] for p in b.parameters() if id(p) in index],
                      self._stochastic(b)) for _, b in self._flat]
        if not forward:
            steps.reverse()
        devices = [x.device.index or 0] if x.is_cuda else []
        plan = Plan(steps, params, forward, log_det, x.requires_grad, ctx_grad, devices, self.checkpoint_every)
        out = ReversibleFunction.apply(plan, x, c, *params)
        return (out[0], out[1]) if log_det else (out, None)

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return self._run(x, c, log_det, forward=True)

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return self._run(y, c, log_det, forward=False)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, blocks={len(self._flat)}"
