"""The split-latent INN of Ardizzone et al. (2019): x -> [y, z], and back to posterior samples."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..blocks import AffineCoupling, AllInOne, RandomPermutation, Standardization
from ..core import AbstractInvertible
from ..core import Sequence as InvSequence
from ..core.conditional import as_conditions, check_count
from ..nets.subnets import mlp_constructor

__all__ = ["SplitLatentINN", "SPLIT_LATENT_BLOCKS"]

#: Block kinds ``SplitLatentINN(coupling=...)`` accepts.
SPLIT_LATENT_BLOCKS = ("allinone", "affine")


class SplitLatentINN(nn.Module):
    r"""An INN whose output splits into the observation y, a Gaussian latent z and zero padding.

    Forward (the learned forward process): standardise x, append ``width - x_dim`` padding
    entries (zero, plus ``pad_noise`` Gaussian noise during training), and run the invertible
    network :math:`f`:

    .. math::
        [\hat y,\ z,\ p] = f([\tilde x,\ \eta]),\qquad \tilde x = (x - \mu_x)/\sigma_x .

    Training (:class:`~innverse.inverse.SplitLatentLoss`) makes :math:`\hat y` match
    :math:`s(x)`, :math:`z \sim \mathcal N(0, I)` independent of :math:`y`, and
    :math:`p \approx 0`. Inverse (the posterior): for an observation :math:`y^*` draw
    :math:`z \sim \mathcal N(0, I)` and return the first ``x_dim`` entries of
    :math:`f^{-1}([\tilde y^*, z, 0])`. With a perfectly trained network these are exact
    samples of :math:`p(x \mid y^*)` (Ardizzone et al. 2019, Theorem 1).

    Args:
        x_dim: number of hidden parameters.
        y_dim: number of observed quantities.
        z_dim: latent size; default ``x_dim - y_dim`` (the information the forward process
            loses); must be given when ``y_dim >= x_dim`` (e.g. one-hot observations).
        width: network width; default ``max(x_dim, y_dim + z_dim) + 2``. x is zero-padded and
            the output [y, z] too, up to ``width``. The two spare dimensions give the couplings
            room: on the 8-modes toy the minimal width 6 did not separate the colours within
            1000 steps where width 8 did, and on inverse kinematics width 6 beat width 4.
        blocks: number of invertible blocks.
        hidden: hidden widths of each block's subnetwork (an MLP).
        coupling: ``"allinone"`` (affine coupling + learned global affine + fixed random
            rotation per block) or ``"affine"`` (affine coupling + random permutation).
        clamp: soft bound of the affine log-scales.
        pad_noise: standard deviation of the noise added to padding entries during training.
        activation: hidden activation of the subnetworks.
        seed: seed of the fixed rotations / permutations.

    References:
        Ardizzone, Kruse, Wirkert, Rahner, Pellegrini, Klessen, Maier-Hein, Rother, Köthe.
        "Analyzing Inverse Problems with Invertible Neural Networks". ICLR 2019.
    """

    def __init__(self, x_dim: int, y_dim: int, z_dim: int | None = None, width: int | None = None,
                 blocks: int = 6, hidden: Sequence[int] = (128, 128), coupling: str = "allinone",
                 clamp: float = 2.0, pad_noise: float = 1e-2,
                 activation: Callable[[], nn.Module] = nn.ReLU, seed: int = 0) -> None:
        super().__init__()
        for nm, v in (("x_dim", x_dim), ("y_dim", y_dim), ("blocks", blocks)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"SplitLatentINN: {nm} must be a positive int, got {v!r}")
        if z_dim is None:
            if y_dim >= x_dim:
                raise ValueError(f"SplitLatentINN: z_dim must be given when y_dim ({y_dim}) >= "
                                 f"x_dim ({x_dim}); the default x_dim - y_dim would be < 1")
            z_dim = x_dim - y_dim
        if isinstance(z_dim, bool) or not isinstance(z_dim, int) or z_dim < 1:
            raise ValueError(f"SplitLatentINN: z_dim must be a positive int, got {z_dim!r}")
        need = max(x_dim, y_dim + z_dim)
        width = need + 2 if width is None else width
        if isinstance(width, bool) or not isinstance(width, int) or width < need or width < 2:
            raise ValueError(
                f"SplitLatentINN: width must be an int >= max(x_dim, y_dim + z_dim, 2) = "
                f"max({x_dim}, {y_dim} + {z_dim}, 2) = {max(need, 2)}, got {width!r}")
        if coupling not in SPLIT_LATENT_BLOCKS:
            raise ValueError(f"SplitLatentINN: coupling must be one of {SPLIT_LATENT_BLOCKS}, "
                             f"got {coupling!r}")
        if not pad_noise >= 0:
            raise ValueError(f"SplitLatentINN: pad_noise must be >= 0, got {pad_noise}")
        self.x_dim, self.y_dim, self.z_dim, self.width = x_dim, y_dim, z_dim, width
        self.pad_noise = float(pad_noise)
        subnet = mlp_constructor(tuple(hidden), activation)
        layers: list[AbstractInvertible] = []
        for i in range(blocks):
            if coupling == "allinone":
                layers.append(AllInOne(width, subnet, clamp=clamp, seed=seed + i))
            else:
                layers += [AffineCoupling(width, subnet, clamp=clamp),
                           RandomPermutation(width, seed=seed + i)]
        self.inn = InvSequence(layers)
        self.x_norm = Standardization(x_dim, name="Standardization(x)")
        self.y_norm = Standardization(y_dim, name="Standardization(y)")

    # -- sizes and set-up -----------------------------------------------------------------------
    @property
    def x_pad(self) -> int:
        """Padding entries appended to x."""
        return self.width - self.x_dim

    @property
    def out_pad(self) -> int:
        """Padding entries after [y, z] on the output side."""
        return self.width - self.y_dim - self.z_dim

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def fit_normalization(self, x: Tensor, y: Tensor) -> SplitLatentINN:
        """Set the x and y standardisation from training data."""
        self._check(x, self.x_dim, "x")
        self._check(y, self.y_dim, "y")
        self.x_norm.fit(x)
        self.y_norm.fit(y)
        return self

    def _check(self, t: Tensor, dim: int, what: str) -> None:
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise TypeError(f"SplitLatentINN: expected {what} as a floating-point tensor, got "
                            f"{getattr(t, 'dtype', type(t).__name__)}")
        if t.dim() != 2 or t.shape[1] != dim:
            raise ValueError(f"SplitLatentINN: expected {what} of shape (batch, {dim}) "
                             f"(the network was built with {what.split()[0]}_dim={dim}), "
                             f"got {tuple(t.shape)}")

    def _ref(self) -> Tensor:
        return self.x_norm.shift

    # -- standardised-space maps (used by the loss) ----------------------------------------------
    def pad(self, x_std: Tensor, noise: float | None = None,
            generator: torch.Generator | None = None) -> Tensor:
        """Append the padding entries: ``(B, x_dim) -> (B, width)``."""
        if self.x_pad == 0:
            return x_std
        sigma = self.pad_noise if noise is None else noise
        eta = x_std.new_zeros(x_std.shape[0], self.x_pad)
        if sigma > 0:
            eta = sigma * torch.randn(eta.shape, generator=generator, dtype=eta.dtype, device=eta.device)
        return torch.cat([x_std, eta], 1)

    def split(self, out: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Split a network output ``(B, width)`` into ``(y, z, padding)``."""
        return out.split([self.y_dim, self.z_dim, self.out_pad], 1)

    def join(self, y_std: Tensor, z: Tensor, out_pad: Tensor | None = None) -> Tensor:
        """Build a network output ``[y, z, padding]`` (padding zero unless given)."""
        if out_pad is None:
            out_pad = y_std.new_zeros(y_std.shape[0], self.out_pad)
        return torch.cat([y_std, z, out_pad], 1)

    def forward_std(self, x_padded: Tensor) -> Tensor:
        """The invertible network, forward: padded standardised x -> [y, z, padding]."""
        return self.inn(x_padded, log_det=False)[0]

    def inverse_std(self, out: Tensor) -> Tensor:
        """The invertible network, inverse: [y, z, padding] -> padded standardised x."""
        return self.inn.inverse(out, log_det=False)[0]

    # -- raw-unit API -----------------------------------------------------------------------------
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The learned forward process: ``x (B, x_dim) -> (y_hat (B, y_dim), z (B, z_dim))``."""
        self._check(x, self.x_dim, "x")
        y_std, z, _ = self.split(self.forward_std(self.pad(self.x_norm.standardize(x.to(self._ref())), noise=0.0)))
        return self.y_norm.unstandardize(y_std), z

    def generate(self, y: Tensor, z: Tensor) -> Tensor:
        """Inverse pass: observations ``(B, y_dim)`` and latents ``(B, z_dim)`` -> x ``(B, x_dim)``."""
        self._check(y, self.y_dim, "y")
        self._check(z, self.z_dim, "z")
        ref = self._ref()
        x_padded = self.inverse_std(self.join(self.y_norm.standardize(y.to(ref)), z.to(ref)))
        return self.x_norm.unstandardize(x_padded[:, : self.x_dim])

    @torch.no_grad()
    def sample(self, n: int, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Posterior samples (the library's conditional-density contract): ``(n, x_dim)`` for one observation
        ``y (y_dim,)``, ``(n, k, x_dim)`` for ``k`` observations ``(k, y_dim)``.

        The split-latent INN is trained by moment matching (MMD), not by maximum likelihood, and its
        padding dimensions make :math:`f` no bijection of ``x`` alone, so it has no ``log_prob``.
        """
        n = check_count("SplitLatentINN.sample", n)
        ys, single = as_conditions("SplitLatentINN.sample", y, (self.y_dim,), "observation y")
        ref = self._ref()
        k = ys.shape[0]
        z = torch.randn(n * k, self.z_dim, generator=generator, dtype=ref.dtype, device=ref.device)
        x = self.generate(ys.to(ref).repeat(n, 1), z).reshape(n, k, self.x_dim)
        return x[:, 0] if single else x

    def extra_repr(self) -> str:
        return (f"x_dim={self.x_dim}, y_dim={self.y_dim}, z_dim={self.z_dim}, width={self.width}, "
                f"pad_noise={self.pad_noise}")
