"""Spectral normalisation and LipSwish against brute-force operator norms and derivatives."""

from __future__ import annotations

import pytest
import torch

from innverse.nets import LipschitzConvNet, LipschitzMLP, LipSwish, SpectralConv2d, SpectralLinear

D64 = torch.float64


def _conv_operator_norm(layer: SpectralConv2d, weight: torch.Tensor) -> float:
    """Largest singular value of the convolution as a dense matrix (brute force)."""
    c, (h, w) = layer.in_channels, layer.input_size

    def f(v):
        return torch.nn.functional.conv2d(v.reshape(1, c, h, w), weight, padding=layer.padding).reshape(-1)

    mat = torch.autograd.functional.jacobian(f, torch.zeros(c * h * w, dtype=weight.dtype))
    return float(torch.linalg.matrix_norm(mat, ord=2))


@pytest.mark.parametrize("mode", ["exact", "power"])
def test_linear_normalised_to_coeff(mode):
    torch.manual_seed(0)
    layer = SpectralLinear(7, 5, coeff=0.8, mode=mode).double().eval()
    with torch.no_grad():
        layer.weight.mul_(10.0)  # far above the bound: the normalisation is active
    norm = float(torch.linalg.matrix_norm(layer.normalized_weight().detach(), ord=2))
    assert abs(norm - 0.8) < 1e-6
    assert abs(layer.lipschitz_bound() - norm) < 1e-12
    with torch.no_grad():
        layer.weight.mul_(1e-3)  # below the bound: left unchanged
    torch.testing.assert_close(layer.normalized_weight().detach(), layer.weight.detach())


def test_power_iteration_tracks_weight_changes():
    torch.manual_seed(1)
    layer = SpectralLinear(6, 6, coeff=0.5, mode="power").double()
    layer.train()
    layer(torch.randn(2, 6, dtype=D64))
    u = layer.u.clone()
    layer(torch.randn(2, 6, dtype=D64))
    torch.testing.assert_close(layer.u, u, rtol=0, atol=0)  # no weight change: no power step
    with torch.no_grad():
        layer.weight.add_(torch.randn(6, 6, dtype=D64))
    layer(torch.randn(2, 6, dtype=D64))
    assert not torch.equal(layer.u, u)  # the optimiser-like change triggered a refresh
    layer.eval()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(6, 6, dtype=D64) * 3)
    sigma = float(layer.sigma().detach())  # eval: iterated to convergence from the stale state
    assert abs(sigma - float(torch.linalg.matrix_norm(layer.weight.detach(), ord=2))) < 1e-5 * sigma


@pytest.mark.parametrize("kernel", [1, 3])
def test_conv_power_iteration_finds_operator_norm(kernel):
    torch.manual_seed(2)
    layer = SpectralConv2d(3, 4, kernel, (5, 4), coeff=0.9, mode="power").double().eval()
    with torch.no_grad():
        layer.weight.mul_(5.0)
    true = _conv_operator_norm(layer, layer.weight.detach())
    assert abs(float(layer.sigma().detach()) - true) < 1e-4 * true
    normalised = _conv_operator_norm(layer, layer.normalized_weight().detach())
    assert normalised <= 0.9 * (1 + 1e-4) and normalised > 0.9 * (1 - 1e-4)


def test_conv_fft_bound_is_certified_upper_bound():
    torch.manual_seed(3)
    layer = SpectralConv2d(2, 3, 3, (4, 4), coeff=0.9, mode="exact").double().eval()
    with torch.no_grad():
        layer.weight.mul_(5.0)
    w = layer.normalized_weight().detach()
    true = _conv_operator_norm(layer, w)
    fft_bound = float(layer.exact_norm(w))
    # "exact" mode normalises the circular-convolution bound, which dominates the true norm
    assert true <= fft_bound + 1e-12 and abs(fft_bound - 0.9) < 1e-9
    # small layers report the exact operator norm (dense SVD), large ones the FFT bound
    assert abs(layer.lipschitz_bound() - true) < 1e-10
    assert abs(float(layer.operator_norm(w, dense_max=0)) - fft_bound) < 1e-12
    # the norm of the reshaped kernel matrix is a different number (not what is normalised)
    kernel_norm = float(torch.linalg.matrix_norm(w.reshape(3, -1), ord=2))
    assert abs(kernel_norm - true) > 1e-3


@pytest.mark.parametrize("beta", [0.1, 0.5, 1.0, 4.0, 20.0])
def test_lipswish_is_one_lipschitz_and_tight(beta):
    act = LipSwish().double()
    with torch.no_grad():
        act.rho.fill_(torch.log(torch.expm1(torch.tensor(beta))).item())
    x = torch.linspace(-50 / beta, 50 / beta, 20001, dtype=D64, requires_grad=True)
    (d,) = torch.autograd.grad(act(x).sum(), x)
    assert d.abs().max() <= 1.0 and d.max() > 0.99
    (d2,) = torch.autograd.grad(act(x).sum(), x, create_graph=True)
    (dd,) = torch.autograd.grad(d2.sum(), x)
    assert dd.abs().max() > 0  # non-vanishing second derivative


@pytest.mark.parametrize("net", [
    lambda: LipschitzMLP(4, 4, (32, 32), coeff=0.9),
    lambda: LipschitzMLP(4, 4, (32,), coeff=0.9, mode="power"),
    lambda: LipschitzConvNet(2, 2, (4, 4), (8,), coeff=0.9),
])
def test_network_bound_dominates_empirical_lipschitz(net):
    torch.manual_seed(4)
    g = net().double().eval()
    with torch.no_grad():
        for p in g.parameters():
            if p.dim() > 1:
                p.mul_(5.0)
    bound = g.lipschitz_bound()
    layers = sum(1 for m in g if not isinstance(m, LipSwish))
    assert bound <= 0.9 ** layers * (1 + 1e-4)
    shape = (4,) if isinstance(g, LipschitzMLP) else (2, 4, 4)
    a = torch.randn(512, *shape, dtype=D64)
    b = a + 0.1 * torch.randn(512, *shape, dtype=D64)
    ratio = (g(a) - g(b)).flatten(1).norm(dim=1) / (a - b).flatten(1).norm(dim=1)
    assert ratio.max() <= bound


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="SpectralLinear: mode"):
        SpectralLinear(2, 2, mode="svd")
    with pytest.raises(ValueError, match="SpectralLinear: coeff"):
        SpectralLinear(2, 2, coeff=0.0)
    with pytest.raises(ValueError, match="SpectralConv2d: kernel_size"):
        SpectralConv2d(2, 2, 2, (4, 4))
    with pytest.raises(ValueError, match=r"SpectralConv2d: input_size must be \(H, W\)"):
        SpectralConv2d(2, 2, 3, (4,))
