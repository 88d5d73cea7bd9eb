"""Shared set-up for the residual-block tests: a block whose spectral normalisation is active."""

from __future__ import annotations

import torch

from innverse.blocks import ResidualBlock

D64 = torch.float64


def saturated_block(features: int = 4, coeff: float = 0.9, hidden=(16,), seed: int = 0, **kwargs) -> ResidualBlock:
    """A float64 block whose layers sit exactly at the spectral bound (large Jacobian terms)."""
    torch.manual_seed(seed)
    block = ResidualBlock(features, hidden=hidden, coeff=coeff, **kwargs).double()
    with torch.no_grad():
        for p in block.net.parameters():
            if p.dim() > 1:
                p.mul_(10.0)
    return block.eval()


def brute_jacobians(block: ResidualBlock, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample Jacobians of g, (B, D, D), by torch.autograd.functional.jacobian."""
    out = []
    for i in range(x.shape[0]):
        ci = None if c is None else c[i:i + 1]

        def g(v, ci=ci):
            return block.g(v.reshape(1, *x.shape[1:]), ci).reshape(-1)

        out.append(torch.autograd.functional.jacobian(g, x[i].reshape(-1)))
    return torch.stack(out)


def truncated_series(jac: torch.Tensor, weights: list[float]) -> torch.Tensor:
    """sum_k (-1)^{k+1} w_k tr(J^k) / k, from explicit matrix powers."""
    total = torch.zeros(jac.shape[0], dtype=jac.dtype)
    power = torch.eye(jac.shape[1], dtype=jac.dtype).expand_as(jac)
    for k, w in enumerate(weights, start=1):
        power = power @ jac
        total = total + (-1) ** (k + 1) * w / k * power.diagonal(dim1=1, dim2=2).sum(1)
    return total


def basis_probes(x: torch.Tensor) -> list[torch.Tensor]:
    """Probe vectors e_1..e_D (for every sample): Hutchinson with these gives exact traces."""
    d = x[0].numel()
    eye = torch.eye(d, dtype=x.dtype)
    return [eye[i].expand(x.shape[0], d).reshape(x.shape).clone() for i in range(d)]


def linear_block(eigenvalues=(0.9, -0.8, 0.6, -0.3), seed: int = 0) -> ResidualBlock:
    """A block with linear g(x) = W x + b, W symmetric with the given eigenvalues (J_g = W).

    Large eigenvalues make the higher series terms tr(W^k) large, so statistical tests can tell
    a correct estimator from a biased one.
    """
    torch.manual_seed(seed)
    d = len(eigenvalues)
    block = ResidualBlock(d, hidden=(), coeff=0.95, spectral="exact").double().eval()
    q, _ = torch.linalg.qr(torch.randn(d, d, dtype=D64))
    with torch.no_grad():
        block.net[0].weight.copy_(q @ torch.diag(torch.tensor(eigenvalues, dtype=D64)) @ q.T)
    return block
