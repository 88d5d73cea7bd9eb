r"""Generated data for representation learning: GIN's synthetic nonlinear-ICA task and an image task of shapes.

* :class:`GINSynthetic` — the artificial data of Sorrenson et al. (2020): a 10-D latent whose
  first 2 dimensions follow a 5-component Gaussian mixture (means uniform in :math:`(-5, 5)`,
  standard deviations uniform in :math:`(0.5, 3)` per component and dimension) and whose other
  8 are noise with standard deviation 0.01, pushed through a fixed, randomly initialised
  GLOW network as in the reference implementation of GIN (8 GLOW blocks, each an affine
  coupling of either half on the other with random 10-10 MLPs, random permutations between
  blocks; every layer drawn at random, none starting as the identity). The mixture component
  is the auxiliary label :math:`u`. ``mixing="rotation"`` is a variant with one affine
  coupling per block and a random rotation between blocks, on which GIN fits less reliably
  (``benchmarks/represent_gin.py``).
* :class:`GeneratedShapes` — grey 16x16 images of six shapes (disc, ring, filled square, square
  outline, plus, diagonal cross) at random positions, sizes, small rotations and contrasts, with
  Gaussian pixel noise; the class as a one-hot condition (an :class:`AbstractImageTask`).

Everything is drawn from explicit seeds: the same seed gives the same mixing network, mixture
and images.

References:
    Sorrenson, Rother, Köthe. "Disentanglement by Nonlinear ICA with General Incompressible-flow
    Networks (GIN)". ICLR 2020.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..blocks import AffineCoupling, Orthogonal, RandomPermutation
from ..core import AbstractInvertible, Sequence
from ..nets.subnets import mlp_constructor
from .images.base import AbstractImageTask, check_split

__all__ = ["GINSynthetic", "GeneratedShapes", "SHAPES"]


class GINSynthetic:
    """The synthetic nonlinear-ICA data of the GIN paper (see the module docstring).

    Args:
        seed: seed of the mixture parameters and the mixing network.
        informative: number of informative latent dimensions.
        noise_dims: number of noise dimensions.
        components: number of mixture components (the auxiliary classes).
        noise_std: standard deviation of the noise dimensions.
        mixing_blocks: coupling blocks of the mixing network.
        mixing: ``"glow"`` (the reference network: per block both halves coupled, random
            permutations between blocks) or ``"rotation"`` (per block one half coupled, random
            rotations between blocks; harder for GIN to fit).
    """

    name = "gin_synthetic"

    def __init__(self, seed: int = 0, informative: int = 2, noise_dims: int = 8, components: int = 5,
                 noise_std: float = 0.01, mixing_blocks: int = 8, mixing: str = "glow") -> None:
        if informative < 1 or noise_dims < 0 or components < 2 or informative + noise_dims < 2:
            raise ValueError(f"GINSynthetic: needs informative >= 1, noise_dims >= 0, components >= 2 and >= 2 "
                             f"dimensions, got {informative}, {noise_dims}, {components}")
        if mixing not in ("glow", "rotation"):
            raise ValueError(f"GINSynthetic: mixing must be 'glow' or 'rotation', got {mixing!r}")
        self.mixing_kind = mixing
        self.seed, self.informative, self.noise_dims = seed, informative, noise_dims
        self.components, self.noise_std, self.mixing_blocks = components, noise_std, mixing_blocks
        gen = torch.Generator().manual_seed(seed)
        self.means = torch.rand(components, informative, generator=gen, dtype=torch.float64) * 10 - 5
        self.stds = torch.rand(components, informative, generator=gen, dtype=torch.float64) * 2.5 + 0.5
        self.mixing = _random_glow(informative + noise_dims, mixing_blocks, gen, rotation=mixing == "rotation")

    @property
    def dim(self) -> int:
        return self.informative + self.noise_dims

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "informative": self.informative, "noise_dims": self.noise_dims,
                "components": self.components, "noise_std": self.noise_std, "mixing_blocks": self.mixing_blocks,
                "mixing": self.mixing_kind}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor, Tensor]:
        """``(x (n, D), u (n,), s (n, D))``: data, mixture components and latents (informative first)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"GINSynthetic.sample: n must be a positive int, got {n!r}")
        u = torch.randint(self.components, (n,), generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        s = torch.cat([self.means[u] + self.stds[u] * eps[:, :self.informative],
                       self.noise_std * eps[:, self.informative:]], 1)
        x = self.mixing(s, log_det=False)[0]
        return x.to(dtype), u, s.to(dtype)

    @torch.no_grad()
    def log_prob(self, x: Tensor, u: Tensor) -> Tensor:
        r"""The true :math:`\log p(x \mid u)` of the generating process, ``(n,)`` (float64).

        :math:`\log\mathcal N(s;\ \mu_u, \sigma_u^2) + \log|\det \partial s/\partial x|` with
        :math:`s` the inverse of the mixing network: the best held-out likelihood a fitted model can
        reach, against which a fit's held-out likelihood tells an optimisation failure (far above it)
        from a fit as good as the truth.
        """
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"GINSynthetic.log_prob: expected x of shape (n, {self.dim}), got "
                             f"{tuple(getattr(x, 'shape', ()))}")
        if not isinstance(u, Tensor) or u.shape != x.shape[:1] or u.dtype != torch.long or \
                bool(((u < 0) | (u >= self.components)).any()):
            raise ValueError(f"GINSynthetic.log_prob: expected u as n={x.shape[0]} integer labels in "
                             f"0..{self.components - 1}")
        s, log_det = self.mixing.inverse(x.to(torch.float64))
        means = torch.cat([self.means, self.means.new_zeros(self.components, self.noise_dims)], 1)
        stds = torch.cat([self.stds, self.stds.new_full((self.components, self.noise_dims), self.noise_std)], 1)
        return torch.distributions.Normal(means[u], stds[u]).log_prob(s).sum(1) + log_det


def _random_glow(d: int, blocks: int, gen: torch.Generator, rotation: bool = False) -> AbstractInvertible:
    r"""A fixed GLOW network of ``blocks`` blocks, float64.

    A block couples the second half on the first and then the first on the second (affine, random
    10-10 MLPs, log-scales bounded at 2), followed by a random permutation, as the GLOW blocks of
    the reference implementation of GIN; with ``rotation``, one coupling of the second half and a
    random rotation. Every weight and bias is drawn from ``gen`` as torch's default ``nn.Linear``
    initialisation would draw it, :math:`\mathcal U(-1/\sqrt{\text{fan-in}}, 1/\sqrt{\text{fan-in}})`,
    including the last layers (so no coupling is the identity).
    """
    half = d // 2
    swap = list(range(half, d)) + list(range(half))
    layers: list[AbstractInvertible] = []
    for _ in range(blocks):
        if rotation:
            layers += [AffineCoupling(d, mlp_constructor((10, 10), zero_init=False), clamp=2.0),
                       Orthogonal(d, generator=gen)]
            continue
        layers += [AffineCoupling(d, mlp_constructor((10, 10), zero_init=False), split=half, clamp=2.0),
                   RandomPermutation(d, permutation=swap),
                   AffineCoupling(d, mlp_constructor((10, 10), zero_init=False), split=d - half, clamp=2.0),
                   RandomPermutation(d, generator=gen)]
    net = Sequence(*layers).double().eval()
    for module in net.modules():
        if isinstance(module, torch.nn.Linear):
            bound = 1.0 / math.sqrt(module.in_features)
            with torch.no_grad():
                for p in (module.weight, module.bias):
                    p.copy_((torch.rand(p.shape, generator=gen, dtype=p.dtype) * 2 - 1) * bound)
    net.requires_grad_(False)
    return net


SHAPES = ("disc", "ring", "square", "square outline", "plus", "diagonal cross")
_SPLIT_SIZES = {"train": 3000, "val": 500, "test": 1000}
_SPLIT_SEEDS = {"train": 11, "val": 12, "test": 13}


def _signed_distance(kind: int, dx: Tensor, dy: Tensor, size: Tensor, width: Tensor) -> Tensor:
    r = torch.sqrt(dx**2 + dy**2)
    box = torch.maximum(dx.abs(), dy.abs())

    def plus(a: Tensor, b: Tensor) -> Tensor:
        return torch.minimum(torch.maximum(a.abs() - width, b.abs() - size), torch.maximum(b.abs() - width, a.abs() - size))

    if kind == 0:
        return r - size
    if kind == 1:
        return (r - size).abs() - width
    if kind == 2:
        return box - size
    if kind == 3:
        return (box - size).abs() - width
    if kind == 4:
        return plus(dx, dy)
    return plus((dx + dy) / math.sqrt(2), (dx - dy) / math.sqrt(2))


class GeneratedShapes(AbstractImageTask):
    """Six classes of generated shapes, grey images ``(1, 16, 16)`` in about ``[0, 1]``, one-hot conditions ``(6,)``.

    Each image: one shape (class ``k`` = ``SHAPES[k]``) centred uniformly within 3 pixels of the
    middle, half-size uniform in ``[3, 6]`` pixels, stroke half-width uniform in ``[0.7, 1.3]``,
    rotated by an angle uniform in ``[-20, 20]`` degrees, contrast uniform in ``[0.6, 1]``, soft
    edges (logistic, 0.5 pixel), plus Gaussian noise of standard deviation ``noise``. Splits of
    3000 / 500 / 1000 images from fixed seeds (11, 12, 13); classes balanced in expectation.
    """

    name = "generated_shapes"
    image_shape = (1, 16, 16)
    condition_shape = (len(SHAPES),)
    levels = None

    def __init__(self, noise: float = 0.1) -> None:
        if not noise >= 0:
            raise ValueError(f"GeneratedShapes: noise must be >= 0, got {noise}")
        self.noise = float(noise)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "noise": self.noise}

    def render(self, labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Images ``(N, 1, 16, 16)`` of the shapes ``labels (N,)`` with random placement, size, angle, contrast, noise."""
        labels = torch.as_tensor(labels)
        if labels.dim() != 1 or labels.is_floating_point() or bool(((labels < 0) | (labels >= len(SHAPES))).any()):
            raise ValueError(f"GeneratedShapes.render: expected integer labels (N,) in 0..{len(SHAPES) - 1}")
        n = labels.shape[0]

        def uniform(lo: float, hi: float) -> Tensor:
            return (lo + (hi - lo) * torch.rand(n, generator=generator))[:, None, None]

        cx, cy, size, width = uniform(4.5, 10.5), uniform(4.5, 10.5), uniform(3.0, 6.0), uniform(0.7, 1.3)
        angle, contrast = uniform(-math.pi / 9, math.pi / 9), uniform(0.6, 1.0)
        grid = torch.arange(16, dtype=torch.float32)
        px, py = grid[None, None, :] - cx, grid[None, :, None] - cy
        dx = torch.cos(angle) * px + torch.sin(angle) * py
        dy = -torch.sin(angle) * px + torch.cos(angle) * py
        images = torch.zeros(n, 16, 16)
        for k in range(len(SHAPES)):
            idx = (labels == k).nonzero().flatten()
            if len(idx):
                sdf = _signed_distance(k, dx[idx], dy[idx], size[idx], width[idx])
                images[idx] = contrast[idx] * torch.sigmoid(-sdf / 0.5)
        noise = torch.randn(images.shape, generator=generator)
        return (images + self.noise * noise)[:, None]

    def pairs(self, split: str, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(images (N, 1, 16, 16), one-hot classes (N, 6))`` of a fixed split (``generator`` is ignored)."""
        check_split("GeneratedShapes.pairs", split)
        gen = torch.Generator().manual_seed(_SPLIT_SEEDS[split])
        labels = torch.randint(len(SHAPES), (_SPLIT_SIZES[split],), generator=gen)
        images = self.render(labels, gen)
        return images, torch.nn.functional.one_hot(labels, len(SHAPES)).float()
