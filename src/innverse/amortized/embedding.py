"""The observation side of an amortized posterior: log scale, standardisation and summary network."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..blocks import Standardization
from .standardize import wide_positive_features, x_stat_shape

__all__ = ["SCALINGS", "ObservationEmbedding", "summary_size"]


def summary_size(summary: nn.Module, x_shape: tuple[int, ...]) -> int:
    """The number of summary features ``summary`` returns for observations of shape ``x_shape``.

    Read from an ``out_features`` attribute when the network has one, else found by running it
    once on a batch of two zero observations.

    Raises:
        ValueError: the network does not map ``(B, *x_shape)`` to ``(B, C)``.
    """
    size = getattr(summary, "out_features", None)
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    ref = next(iter(summary.parameters()), None)
    probe = torch.zeros(2, *x_shape, dtype=ref.dtype if ref is not None else torch.get_default_dtype(),
                        device=ref.device if ref is not None else None)
    was_training = summary.training
    summary.eval()
    try:
        with torch.no_grad():
            out = summary(probe)
    except Exception as err:
        raise ValueError(f"the summary network {type(summary).__name__} failed on a batch of observations of shape "
                         f"(2, *{x_shape}): {type(err).__name__}: {err}") from err
    finally:
        summary.train(was_training)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 2:
        raise ValueError(f"the summary network {type(summary).__name__} must map (B, *{x_shape}) to (B, C), got "
                         f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__} for B = 2")
    return int(out.shape[1])


#: how observations can be scaled (see :class:`ObservationEmbedding`)
SCALINGS = ("robust", "moments")
#: the soft bound of robustly scaled features: ``b asinh(z / b)``
SOFT_BOUND = 10.0


class ObservationEmbedding(nn.Module):
    r"""What the conditional INN sees of an observation: :math:`h = S\big(r((g(x) - \mu_x) / \sigma_x)\big)`.

    :math:`g` takes the logarithm of the features in ``log_features`` (strictly positive
    data spanning many decades, see :meth:`fit`), :math:`\mu_x, \sigma_x` is a
    :class:`~innverse.blocks.Standardization` per feature (pooled over the elements of sets and
    series), :math:`r` a soft bound and :math:`S` the summary network (identity: flattening).
    The flow's conditioning network: it runs once per batch of observations.

    With ``scaling="robust"`` (the default) :math:`\mu_x, \sigma_x` are the median and a robust
    scale (:meth:`~innverse.blocks.Standardization.fit`) and :math:`r(z) = b\,\mathrm{asinh}(z / b)`
    with :math:`b = 10`: the identity to within 1.5% for :math:`|z| \le 3`, logarithmic beyond,
    so rare extreme simulations (1e30 from a simulator that blows up) neither set the scale of
    the others nor reach the networks as overflowing inputs. ``"moments"``: mean and standard
    deviation, no bound (models saved before the robust scaling existed).

    Args:
        x_shape: shape of one observation.
        summary: summary network ``(B, *x_shape) -> (B, C)`` or ``None``.
        scaling: ``"robust"`` or ``"moments"``.
    """

    def __init__(self, x_shape: tuple[int, ...], summary: nn.Module | None = None, scaling: str = "robust") -> None:
        super().__init__()
        if scaling not in SCALINGS:
            raise ValueError(f"ObservationEmbedding: scaling must be one of {SCALINGS}, got {scaling!r}")
        self.scaling = scaling
        self.x_shape = tuple(int(s) for s in x_shape)
        stat = x_stat_shape(self.x_shape)
        self.standardization = Standardization(self.x_shape, stat, name="Standardization(x)")
        #: features standardised on the log scale
        self.register_buffer("log_features", torch.zeros(stat, dtype=torch.bool))
        self.summary = summary
        self.variable_size = bool(getattr(summary, "variable_size", False))
        self.out_features = math.prod(self.x_shape) if summary is None else summary_size(summary, self.x_shape)

    @torch.no_grad()
    def fit(self, x: Tensor, log_x: bool | str = "auto") -> None:
        """Statistics from training observations ``x (n, *x_shape)``.

        ``log_x="auto"`` standardises the features that are strictly positive and span more
        than three decades on the log scale (:func:`~innverse.amortized.standardize.wide_positive_features`;
        e.g. population counts with multiplicative noise), ``False`` none.
        """
        if log_x not in ("auto", False):
            raise ValueError(f"ObservationEmbedding.fit: log_x must be 'auto' or False, got {log_x!r}")
        self.log_features.copy_(wide_positive_features(x, self.x_shape) if log_x == "auto"
                                else torch.zeros_like(self.log_features))
        self.standardization.fit(self._log(x.to(torch.float64)), self.scaling)

    def _log(self, x: Tensor) -> Tensor:
        """``x`` with the features of ``log_features`` on the log scale; a value <= 0 there is an error."""
        if not bool(self.log_features.any()):
            return x
        mask = self.log_features.reshape((1,) * (x.dim() - self.log_features.dim()) + tuple(self.log_features.shape))
        bad = mask & (x <= 0)
        if bool(bad.any()):
            numel = self.log_features.numel()
            feature = int(bad.reshape(-1, numel).any(0).nonzero()[0]) if numel > 1 else 0
            raise ValueError(f"PosteriorEstimator: data feature {feature} is standardised on the log scale (all "
                             f"training values were positive, spanning more than three decades), but got "
                             f"{float(x[bad][0]):g} <= 0")
        return torch.where(mask, torch.log(torch.where(mask, x, 1.0)), x)

    def standardize(self, x: Tensor) -> Tensor:
        """Observations ``(B, ...)`` in standardised (and, when robust, softly bounded) units; NaN padding stays NaN."""
        z = self.standardization.standardize(self._log(x))
        return z if self.scaling == "moments" else SOFT_BOUND * torch.asinh(z / SOFT_BOUND)

    def summarize(self, z: Tensor) -> Tensor:
        """Summaries ``(B, C)`` of already standardised observations ``z``."""
        return z.flatten(1) if self.summary is None else self.summary(z)

    def forward(self, x: Tensor) -> Tensor:
        """Summaries ``(B, C)`` of observations ``x (B, ...)``."""
        return self.summarize(self.standardize(x))

    def summary_config(self) -> dict[str, Any] | None:
        return None if self.summary is None else self.summary.config()
