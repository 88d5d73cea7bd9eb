r"""Classifiers that are bijective up to a final linear projection: i-RevNet and i-ResNet."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from collections.abc import Sequence as SequenceABC
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from ..blocks import Flatten
from ..blocks.fixed_point import FixedPointResult, FixedPointSolver
from ..core import AbstractInvertible, Sequence
from .architectures import iresnet_body, irevnet_body, pooled_features, residual_blocks

__all__ = ["IResNetClassifier", "IRevNetClassifier", "InvertibleClassifier", "parameter_count", "seeded"]


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the body with torch's global generator seeded by ``seed`` and restore its state after (no-op for None).

    Module initialisation draws from the global generator; this makes it reproducible without
    changing the caller's random state.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class InvertibleClassifier(nn.Module):
    r"""A classifier whose every layer but the last linear one is a bijection.

    .. math::
        z = \Phi(x) \in \mathbb R^{D},\qquad z = [z_s, z_n],\ z_s \in \mathbb R^{k},\qquad
        \text{logits} = W z_s + b,\qquad x = \Phi^{-1}(z).

    :math:`\Phi` (``body``) is an invertible module whose output is flattened to the *last
    hidden representation* :math:`z` (``features``); it keeps all information about :math:`x`,
    which :meth:`invert` recovers exactly (to round-off for coupling bodies, to the fixed-point
    tolerance for residual bodies). Only the first ``k`` coordinates, the *logit subspace*
    :math:`z_s`, reach the linear projection; the *nuisance* :math:`z_n` (the other
    :math:`D - k`) cannot change the logits. This split is what metameric sampling and the
    independence cross-entropy of :mod:`innverse.represent.invariance` act on.

    With ``padding > 0`` the classifier is *injective* rather than bijective (the injective
    padding of the i-RevNet and i-ResNet papers): inputs get ``padding`` zero channels (images)
    or zero features (vectors) before :math:`\Phi`, which gives the first blocks room to work.
    :meth:`invert` still recovers every input exactly from its representation (it drops the
    padding of :math:`\Phi^{-1}(z)`), but a representation that no input produced, such as a
    metamer's, inverts to a tensor whose padding is not zero, so metameric sampling needs
    ``padding=0``.

    Args:
        body: the bijection :math:`\Phi` (unconditional), e.g. :func:`irevnet_body`, on inputs
            with ``padding`` extra leading-dimension entries.
        classes: number of classes ``C >= 2``.
        logit_features: size ``k`` of the logit subspace, ``1 <= k <= D`` (default ``C``).
        name: what error messages call the model.
        padding: zero channels (features) appended to every input; 0 keeps the map bijective.

    References:
        Jacobsen, Smeulders, Oyallon. "i-RevNet: Deep Invertible Networks". ICLR 2018;
        Jacobsen, Behrmann, Zemel, Bethge. "Excessive Invariance Causes Adversarial
        Vulnerability". ICLR 2019.
    """

    def __init__(self, body: AbstractInvertible, classes: int, logit_features: int | None = None,
                 name: str = "InvertibleClassifier", padding: int = 0) -> None:
        super().__init__()
        self.name = name
        if not isinstance(body, AbstractInvertible):
            raise TypeError(f"{name}: body must be an invertible module, got {type(body).__name__}")
        if body.conditional:
            raise ValueError(f"{name}: the body must be unconditional")
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
            raise ValueError(f"{name}: classes must be an int >= 2, got {classes!r}")
        if isinstance(padding, bool) or not isinstance(padding, int) or not 0 <= padding < body.event_shape[0]:
            raise ValueError(f"{name}: padding must be an int in [0, {body.event_shape[0]}) (the body's inputs have "
                             f"{body.event_shape[0]} channels or features, padding included), got {padding!r}")
        if len(body.output_shape) != 1:
            body = Sequence(body, Flatten(body.output_shape))
        d = body.output_shape[0]
        k = classes if logit_features is None else logit_features
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= d:
            raise ValueError(f"{name}: the logit subspace must have 1 <= logit_features <= {d} (the size of the "
                             f"representation of inputs {body.event_shape}), got logit_features={k!r}")
        self.body = body
        self.padding = padding
        self.classes = classes
        self.logit_features = k
        self.projection = nn.Linear(k, classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        first, *rest = self.body.event_shape
        return (first - self.padding, *rest)

    @property
    def representation_size(self) -> int:
        """``D``, the size of the last hidden representation (= the number of input elements, padding included)."""
        return self.body.output_shape[0]

    @property
    def bijective(self) -> bool:
        r"""Whether :math:`\Phi` maps inputs onto all of :math:`\mathbb R^D` (no injective padding)."""
        return self.padding == 0

    @property
    def exact_inverse(self) -> bool:
        """Whether :meth:`invert` is exact to round-off (coupling body) rather than iterative (residual)."""
        return self.body.exact_inverse

    def _check(self, owner: str, t: Tensor, shape: tuple[int, ...], what: str) -> None:
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise TypeError(f"{self.name}.{owner}: expected {what} as a floating-point tensor, got "
                            f"{getattr(t, 'dtype', type(t).__name__)}")
        if t.dim() != len(shape) + 1 or tuple(t.shape[1:]) != shape:
            raise ValueError(f"{self.name}.{owner}: expected {what} of shape (batch, "
                             f"{', '.join(map(str, shape))}), got {tuple(t.shape)}")

    # -- the representation ---------------------------------------------------------------------
    def features(self, x: Tensor) -> Tensor:
        r"""The last hidden representation :math:`z = \Phi(x)`: ``(B, *input_shape) -> (B, D)``."""
        self._check("features", x, self.input_shape, "inputs")
        if self.padding:
            x = torch.cat([x, x.new_zeros(x.shape[0], self.padding, *x.shape[2:])], 1)
        return self.body(x, log_det=False)[0]

    def features_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""``(z, log|det dPhi/dx|)`` of inputs ``(B, *input_shape)``: the density of the inputs under the bijection.

        Raises a ``ValueError`` for an injective model: with padding, :math:`\Phi` maps the inputs
        onto a subset of :math:`\mathbb R^D` of lower dimension and has no such density.
        """
        if not self.bijective:
            raise ValueError(f"{self.name}.features_and_log_det: needs a bijective model; this one pads its inputs "
                             f"(injective_padding={self.padding}), so they have no density in the representation")
        self._check("features_and_log_det", x, self.input_shape, "inputs")
        z, log_det = self.body(x, log_det=True)
        return z, log_det

    def invert(self, features: Tensor) -> Tensor:
        r"""The input :math:`x = \Phi^{-1}(z)` of a representation: ``(B, D) -> (B, *input_shape)``."""
        self._check("invert", features, (self.representation_size,), "features")
        x = self.body.inverse(features, log_det=False)[0]
        return x[:, :self.input_shape[0]] if self.padding else x

    def split(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """``(z_s (B, k), z_n (B, D - k))``: the logit subspace and the nuisance of ``features (B, D)``."""
        self._check("split", features, (self.representation_size,), "features")
        return features[:, :self.logit_features], features[:, self.logit_features:]

    def merge(self, logit_part: Tensor, nuisance: Tensor) -> Tensor:
        """``[z_s, z_n]``, the inverse of :meth:`split`."""
        self._check("merge", logit_part, (self.logit_features,), "the logit part")
        self._check("merge", nuisance, (self.representation_size - self.logit_features,), "the nuisance")
        return torch.cat([logit_part, nuisance], 1)

    # -- classification -------------------------------------------------------------------------
    def head(self, features: Tensor) -> Tensor:
        r"""Logits :math:`W z_s + b` of representations ``(B, D) -> (B, C)``."""
        self._check("head", features, (self.representation_size,), "features")
        return self.projection(features[:, :self.logit_features])

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, C)`` of inputs ``(B, *input_shape)``."""
        return self.head(self.features(x))

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 1024) -> Tensor:
        """The most probable class ``(B,)``."""
        return torch.cat([self(x[i:i + batch_size]).argmax(1) for i in range(0, x.shape[0], batch_size)])

    def fixed_point_reports(self) -> list[FixedPointResult]:
        """The report (iterations, residual, error bound) of the last inversion of every residual block (empty for an exact body)."""
        return [b.last_inverse for b in residual_blocks(self.body) if b.last_inverse is not None]


def _build(make: Callable[[], AbstractInvertible], classes: int, logit_features: int | None, name: str,
           seed: int | None, padding: int = 0) -> InvertibleClassifier:
    with seeded(seed):
        body = make()
        if logit_features is None:
            logit_features = pooled_features(body)   # pool=True: the pooled coordinates
        return InvertibleClassifier(body, classes, logit_features, name=name, padding=padding)


def _padded(owner: str, input_shape: int | SequenceABC[int], padding: int) -> tuple[int, ...]:
    """``input_shape`` with ``padding`` more channels (features); a ``ValueError`` naming ``owner`` for a bad padding."""
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"{owner}: injective_padding must be an int >= 0, got {padding!r}")
    first, *rest = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    return (first + padding, *rest)


def IRevNetClassifier(input_shape: int | SequenceABC[int], classes: int, logit_features: int | None = None,
                      stages: SequenceABC[int] = (2, 2, 2), hidden: int = 64, actnorm: bool = True,
                      lipschitz: float | None = None, pool: bool = False, seed: int | None = 0) -> InvertibleClassifier:
    r"""The bijective i-RevNet classifier: :func:`~innverse.represent.irevnet_body` + a linear projection of the logit subspace.

    Invertible downsampling (squeeze, then a strided :class:`~innverse.blocks.IRevNetBlock` at
    the start of every later stage) and additive couplings with swaps; :math:`\Phi` is exactly
    invertible, so :meth:`InvertibleClassifier.invert` reconstructs the input to round-off.

    Args:
        input_shape: images ``(C, H, W)`` (``H``, ``W`` divisible by ``2 ** len(stages)``) or vectors ``(D,)``.
        classes, logit_features: as :class:`InvertibleClassifier`.
        stages: blocks per resolution level (vectors: ``sum(stages)`` blocks).
        hidden: channels of the residual conv nets (vectors: MLP width ``4 * hidden``).
        actnorm: an :class:`~innverse.blocks.ActNorm` in front of every block (see :func:`irevnet_body`).
        lipschitz: bound on the Lipschitz constant of every residual function (None: unconstrained);
            it keeps the inverse finite on representations off the data, such as metamers.
        pool: images: Haar transforms after the last stage put each channel's spatial mean first,
            and ``logit_features`` defaults to those pooled coordinates, so the head is a global
            average pooling and a linear layer, as in a ResNet (the body stays a bijection).
        seed: seed of the initialisation (``None``: torch's global generator).

    References:
        Jacobsen, Smeulders, Oyallon. "i-RevNet: Deep Invertible Networks". ICLR 2018.
    """
    return _build(lambda: irevnet_body(input_shape, stages, hidden, actnorm, lipschitz, pool, owner="IRevNetClassifier"), classes,
                  logit_features, "IRevNetClassifier", seed)


# exempt from the size rule: the one-line constructor exposes each architecture choice of the
# paper's classifiers (depth, width, Lipschitz bound, pooling, injective padding) as a keyword.
def IResNetClassifier(input_shape: int | SequenceABC[int], classes: int, logit_features: int | None = None,
                      stages: SequenceABC[int] = (2, 2, 2), hidden: int = 64, coeff: float = 0.9,
                      actnorm: bool = True, solver: FixedPointSolver | None = None, spectral: str = "power",
                      pool: bool = False, injective_padding: int = 0, squeeze: bool = True,
                      seed: int | None = 0) -> InvertibleClassifier:
    r"""The i-ResNet classifier: :func:`~innverse.represent.iresnet_body` + a linear projection of the logit subspace.

    Spectrally normalised residual blocks :math:`x + g(x)`, :math:`\mathrm{Lip}(g) \le`
    ``coeff`` :math:`^{L} < 1`, with squeezes between stages; the inverse is the fixed point
    :math:`x = y - g(x)` of every block (``solver``: tolerance, iteration cap, acceleration;
    :meth:`InvertibleClassifier.fixed_point_reports` gives the iteration counts of the last
    inversion). Arguments as :func:`IRevNetClassifier` (``pool`` included), plus ``coeff``,
    ``actnorm``, ``solver``, ``spectral`` and ``squeeze`` (see :func:`~innverse.represent.iresnet_body`).

    ``injective_padding``: zero channels (vector features) appended to the input, the setup of
    the paper's classifiers (CIFAR-10: 3 + 13 channels, no initial squeeze, so
    ``injective_padding=13, squeeze=False``). A residual block :math:`x + g(x)` with
    :math:`\mathrm{Lip}(g) < 1` cannot change its input much, and on a grey image squeezed to 4
    channels it has little room; padding gives it channels. The classifier is then injective:
    :meth:`~InvertibleClassifier.invert` still reconstructs inputs from their representations,
    but metameric sampling needs the bijective model (``injective_padding=0``).

    References:
        Behrmann, Grathwohl, Chen, Duvenaud, Jacobsen. "Invertible Residual Networks". ICML 2019.
    """
    if not 0.0 < coeff < 1.0:
        raise ValueError(f"IResNetClassifier: coeff must be in (0, 1) for the blocks to be invertible, got {coeff}")
    padded = _padded("IResNetClassifier", input_shape, injective_padding)
    return _build(lambda: iresnet_body(padded, stages, hidden, coeff, actnorm, solver, spectral, pool, squeeze,
                                       owner="IResNetClassifier"),
                  classes, logit_features, "IResNetClassifier", seed, injective_padding)


def parameter_count(module: nn.Module) -> int:
    """Number of trainable parameters (for comparing models of the same size)."""
    return int(sum(math.prod(p.shape) for p in module.parameters() if p.requires_grad))
