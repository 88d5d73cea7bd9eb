"""The invertible-module protocol every block and composition implements."""

from __future__ import annotations

import math
from collections.abc import Sequence as SequenceABC

import torch
from torch import Tensor, nn

Shape = tuple[int, ...]
Context = Tensor | list[Tensor] | tuple[Tensor, ...] | None

__all__ = ["AbstractInvertible", "Context", "Inverse", "Shape", "add_log_det", "as_shape", "check_context"]


def add_log_det(total: Tensor | None, ld: Tensor | None) -> Tensor | None:
    """Sum two internal log-dets where ``None`` stands for an identically zero term."""
    if ld is None:
        return total
    return ld if total is None else total + ld


def as_shape(shape: int | SequenceABC[int] | torch.Size, name: str = "shape") -> Shape:
    """Normalise an int or a sequence of ints to a tuple of positive ints."""
    if isinstance(shape, int):
        shape = (shape,)
    try:
        out = tuple(int(s) for s in shape)
    except TypeError as err:
        raise TypeError(f"{name} must be an int or a sequence of ints, got {shape!r}") from err
    if any(s <= 0 for s in out):
        raise ValueError(f"{name} must contain positive sizes, got {out}")
    return out


def _fmt(shape: SequenceABC[int]) -> str:
    return "(batch, " + ", ".join(str(s) for s in shape) + ")"


def check_context(owner: str, c: Context, context_shape: Shape | None) -> None:
    """Raise a ValueError naming ``owner`` when ``c`` does not match ``context_shape``."""
    if context_shape is None:
        if c is not None:
            raise ValueError(f"{owner}: takes no condition, but a context was given")
        return
    if c is None:
        raise ValueError(f"{owner}: expected a context of shape {_fmt(context_shape)}, got None")
    if not isinstance(c, Tensor):
        raise ValueError(f"{owner}: expected the context as one tensor, got {type(c).__name__}")
    if not c.is_floating_point():
        raise ValueError(f"{owner}: expected a floating-point context, got dtype {c.dtype}")
    if tuple(c.shape[1:]) != context_shape or c.dim() != len(context_shape) + 1:
        raise ValueError(
            f"{owner}: expected a context of shape {_fmt(context_shape)}, got {tuple(c.shape)}"
        )


class AbstractInvertible(nn.Module):
    r"""An invertible map :math:`y = f(x; c)` with a tractable log-determinant.

    Subclasses implement :meth:`_forward` and :meth:`_inverse`; the public
    :meth:`forward` and :meth:`inverse` check shapes and dtypes once, here.

    * ``forward(x, c) -> (y, log|det ∂y/∂x|)``
    * ``inverse(y, c) -> (x, log|det ∂x/∂y|)`` (the log-det of the map that was run)

    ``log_det`` has shape ``(batch,)``. With ``log_det=False`` the second element is ``None``
    and blocks may skip its computation.

    Internal convention: ``_forward`` / ``_inverse`` may return ``None`` as the log-det when it
    is identically zero (permutations, reshapes, additive and volume-preserving couplings);
    compositions skip those terms and the public methods turn ``None`` into zeros. Code that
    calls ``_forward`` directly must accept ``None`` (see :func:`add_log_det`).

    Args:
        event_shape: shape of one input sample, e.g. ``(D,)`` or ``(C, H, W)``.
        context_shape: shape of one condition sample, or ``None`` for an unconditional block.
        output_shape: shape of one output sample (defaults to ``event_shape``).
    """

    #: whether the inverse is exact to round-off (couplings) rather than iterative (residual).
    exact_inverse: bool = True
    #: the name errors and ``repr`` use; a factory such as ``AffineCoupling`` sets it on the
    #: generic block it builds, so messages name what the user constructed
    block_name: str | None = None

    def __init__(
        self,
        event_shape: int | SequenceABC[int],
        context_shape: int | SequenceABC[int] | None = None,
        output_shape: int | SequenceABC[int] | None = None,
    ) -> None:
        super().__init__()
        self.event_shape: Shape = as_shape(event_shape, "event_shape")
        self.context_shape: Shape | None = (
            None if context_shape is None else as_shape(context_shape, "context_shape")
        )
        self.output_shape: Shape = (
            self.event_shape if output_shape is None else as_shape(output_shape, "output_shape")
        )
        if math.prod(self.output_shape) != math.prod(self.event_shape):
            raise ValueError(
                f"{self.name}: output shape {self.output_shape} has a different number "
                f"of elements than event shape {self.event_shape}"
            )

    @property
    def name(self) -> str:
        """What errors call this block: :attr:`block_name`, else the class name."""
        return self.block_name or type(self).__name__

    def _get_name(self) -> str:  # what nn.Module's repr prints
        return self.name

    # -- checks ---------------------------------------------------------------------------------
    def _check_input(self, x: Tensor, shape: Shape, what: str) -> None:
        name = self.name
        if not isinstance(x, Tensor):
            raise ValueError(f"{name}: expected {what} as a tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point {what}, got dtype {x.dtype}")
        if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            raise ValueError(f"{name}: expected {what} of shape {_fmt(shape)}, got {tuple(x.shape)}")

    def _check_context(self, c: Context) -> None:
        check_context(self.name, c, self.context_shape)

    @property
    def conditional(self) -> bool:
        """Whether the module takes a condition."""
        return self.context_shape is not None

    @property
    def context_shapes(self) -> list[Shape]:
        """Shapes of all condition inputs (several for a :class:`Graph`, else zero or one)."""
        return [] if self.context_shape is None else [self.context_shape]

    # -- public protocol ------------------------------------------------------------------------
    def forward(self, x: Tensor, c: Context = None, *, log_det: bool = True) -> tuple[Tensor, Tensor | None]:
        """Map ``x`` of shape ``(B, *event_shape)`` to ``(y, log_det)``."""
        self._check_input(x, self.event_shape, "input")
        self._check_context(c)
        y, ld = self._forward(x, c, log_det)
        if not log_det:
            return y, None
        return y, (x.new_zeros(x.shape[0]) if ld is None else ld)

    def inverse(self, y: Tensor, c: Context = None, *, log_det: bool = True) -> tuple[Tensor, Tensor | None]:
        """Map ``y`` of shape ``(B, *output_shape)`` back to ``(x, log_det of the inverse)``."""
        self._check_input(y, self.output_shape, "input to the inverse")
        self._check_context(c)
        x, ld = self._inverse(y, c, log_det)
        if not log_det:
            return x, None
        return x, (y.new_zeros(y.shape[0]) if ld is None else ld)

    def inverted(self) -> AbstractInvertible:
        """This map's inverse, as a module sharing the same parameters."""
        return Inverse(self)

    # -- to implement ---------------------------------------------------------------------------
    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def extra_repr(self) -> str:
        s = f"event_shape={self.event_shape}"
        if self.output_shape != self.event_shape:
            s += f", output_shape={self.output_shape}"
        if self.context_shape is not None:
            s += f", context_shape={self.context_shape}"
        return s


class Inverse(AbstractInvertible):
    """The inverse of an invertible module, sharing its parameters.

    ``Inverse(f).forward = f.inverse`` and ``Inverse(f).inverse = f.forward``.
    """

    def __init__(self, module: AbstractInvertible) -> None:
        super().__init__(module.output_shape, module.context_shape, module.event_shape)
        self.module = module
        self.exact_inverse = module.exact_inverse

    @property
    def conditional(self) -> bool:
        return self.module.conditional

    @property
    def context_shapes(self) -> list[Shape]:
        return self.module.context_shapes

    def _check_context(self, c: Context) -> None:
        self.module._check_context(c)

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return self.module._inverse(x, c, log_det)

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        return self.module._forward(y, c, log_det)

    def inverted(self) -> AbstractInvertible:
        return self.module
