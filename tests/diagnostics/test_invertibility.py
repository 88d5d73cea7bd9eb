"""Invertibility diagnostics: healthy networks pass, ill-conditioned ones are flagged, Lipschitz is exact."""

import json

import pytest
import torch
from torch import nn

from innverse import GraphBuilder, Sequence
from innverse.blocks import ActNorm, AffineCoupling, LULinear, RandomPermutation
from innverse.core import AbstractInvertible
from innverse.diagnostics import InvertibilityWarning, check_invertibility, local_lipschitz
from innverse.flows import coupling_flow


def _perturb(module: nn.Module, scale: float, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def _large_subnet(factor: float):
    def make(i: int, o: int) -> nn.Module:
        g = torch.Generator().manual_seed(i * 100 + o)
        net = nn.Sequential(nn.Linear(i, 32), nn.Tanh(), nn.Linear(32, o))
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(factor * torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
        return net
    return make


def test_healthy_coupling_flow_passes():
    flow = _perturb(coupling_flow(4, blocks=4, hidden=(32, 32), actnorm=True), 0.05)
    report = check_invertibility(flow, torch.randn(128, 4, generator=torch.Generator().manual_seed(1)))
    assert report.stable and not report.reasons
    assert report.data["forward_inverse_error"] < 1e-5
    assert 1.0 <= report.lipschitz_forward < 10 and 1.0 <= report.lipschitz_inverse < 10
    assert len(report.blocks) >= 8 and all(b.stable for b in report.blocks)
    json.dumps(report.to_dict())


def test_unclamped_affine_coupling_with_large_scales_is_flagged():
    bad = Sequence(*[AffineCoupling(4, subnet_constructor=_large_subnet(6.0), clamp=None) if i % 2 == 0
                     else LULinear(4, seed=i) for i in range(6)])
    x = torch.randn(128, 4, generator=torch.Generator().manual_seed(2))
    with pytest.warns(InvertibilityWarning, match="unstable inverse"):
        report = check_invertibility(bad, x)
    assert not report.stable
    assert report.condition > 1e6
    assert report.blocks[0].kind == "AffineCoupling"
    assert "AffineCoupling" in next(b.kind for b in report.blocks if b.name == report.worst_block)
    # the same architecture with the default clamp is fine
    good = Sequence(*[AffineCoupling(4, subnet_constructor=_large_subnet(0.5)) if i % 2 == 0
                      else LULinear(4, seed=i) for i in range(6)])
    assert check_invertibility(good, x).stable


def test_exploding_inverse_only_outside_the_data_is_caught_by_latent_probes():
    # Scales are moderate near the data but grow with |x|: inputs outside the training range explode.
    def make(i: int, o: int) -> nn.Module:
        lin = nn.Linear(i, o)
        with torch.no_grad():
            lin.weight.fill_(3.0)
            lin.bias.zero_()
        return lin
    inn = Sequence(AffineCoupling(2, subnet_constructor=make, clamp=None), RandomPermutation(2, seed=0),
                   AffineCoupling(2, subnet_constructor=make, clamp=None))
    x = 0.1 * torch.randn(64, 2, generator=torch.Generator().manual_seed(3))
    near = check_invertibility(inn, x, latent_scales=(), warn=False)
    assert near.stable
    with pytest.warns(InvertibilityWarning):
        far = check_invertibility(inn, x, latent_scales=(1.0, 4.0))
    assert not far.stable


def test_local_lipschitz_matches_brute_force_singular_values():
    torch.manual_seed(4)
    block = _perturb(AffineCoupling(5, clamp=2.0), 0.3).double().eval()
    x = torch.randn(6, 5, dtype=torch.float64)
    est = local_lipschitz(lambda t: block(t, log_det=False)[0], x, iterations=60)
    for i in range(6):
        jac = torch.autograd.functional.jacobian(lambda t: block(t[None], log_det=False)[0][0], x[i])
        assert est[i] == pytest.approx(float(torch.linalg.matrix_norm(jac, 2)), rel=1e-6)
    inv = local_lipschitz(lambda t: block.inverse(t, log_det=False)[0], block(x, log_det=False)[0], iterations=60)
    for i in range(6):
        jac = torch.autograd.functional.jacobian(lambda t: block(t[None], log_det=False)[0][0], x[i])
        assert inv[i] == pytest.approx(1 / float(torch.linalg.svdvals(jac).min()), rel=1e-6)


class _FixedPointBlock(AbstractInvertible):
    """``y = x + tanh(W x)`` with ``||W||_2 = 0.5``, inverted by fixed-point iteration."""

    exact_inverse = False

    def __init__(self, d: int, tolerance: float, max_iterations: int = 200) -> None:
        super().__init__(d)
        w = torch.randn(d, d, generator=torch.Generator().manual_seed(d))
        self.register_buffer("W", 0.5 * w / torch.linalg.matrix_norm(w, 2))
        self.tolerance, self.max_iterations = tolerance, max_iterations

    def lipschitz_bound(self) -> float:
        return 0.5

    def _g(self, x):
        return torch.tanh(x @ self.W.T)

    def _log_det(self, x):
        jac = torch.eye(x.shape[1], dtype=x.dtype) + (1 - self._g(x) ** 2)[:, :, None] * self.W
        return torch.linalg.slogdet(jac)[1]

    def _forward(self, x, c, log_det):
        return x + self._g(x), self._log_det(x) if log_det else None

    def _inverse(self, y, c, log_det):
        x = y
        for _ in range(self.max_iterations):
            x = y - self._g(x)
            if bool(((x + self._g(x) - y).abs().amax(1) <= self.tolerance * y.abs().amax(1).clamp_min(1)).all()):
                break
        return x, -self._log_det(x) if log_det else None


def test_iterative_blocks_are_judged_by_their_tolerance():
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(5))
    loose = Sequence(ActNorm(3), _FixedPointBlock(3, tolerance=1e-3))
    report = check_invertibility(loose, x)
    block = report.blocks[1]
    assert not block.exact_inverse and block.tolerance == 1e-3
    assert 1e-4 < max(block.forward_inverse_error, block.inverse_forward_error) < 1e-2  # far above round-off
    assert block.stable and report.stable
    assert block.certified_lipschitz == pytest.approx((1.5, 2.0))
    assert block.lipschitz_forward <= 1.5 + 1e-4 and block.lipschitz_inverse <= 2.0 + 1e-3
    # a solver that stops long before its stated tolerance is flagged
    lying = Sequence(ActNorm(3), _FixedPointBlock(3, tolerance=1e-6, max_iterations=2))
    with pytest.warns(InvertibilityWarning):
        assert not check_invertibility(lying, x).blocks[1].stable


def test_graph_blocks_are_walked_and_conditional_flows_work():
    b = GraphBuilder((4,))
    cond = b.condition((2,))
    h = b.add(AffineCoupling(4, context_shape=(2,)), b.input, cond)
    z1, h2 = b.split(h, [2, 2])
    h2 = b.add(AffineCoupling(2, context_shape=(2,)), h2, cond)
    graph = _perturb(b.build([z1, h2]), 0.1)
    x, c = torch.randn(32, 4), torch.randn(32, 2)
    report = check_invertibility(graph, x, c)
    assert [blk.name for blk in report.blocks] == ["blocks.0", "blocks.1"] and report.stable
    flow = _perturb(coupling_flow(3, context_features=2, blocks=2, hidden=(16,)), 0.05)
    assert check_invertibility(flow, torch.randn(16, 3), torch.randn(16, 2)).stable
    with pytest.raises(ValueError, match="conditional; pass its condition"):
        check_invertibility(flow, torch.randn(16, 3))
    with pytest.raises(TypeError, match="invertible module or a Flow"):
        check_invertibility(nn.Linear(3, 3), torch.randn(4, 3))
