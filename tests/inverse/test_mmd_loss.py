"""The IMQ-kernel MMD training loss against a brute-force float64 evaluation and its known behaviour."""

import pytest
import torch

from innverse.inverse import MMDLoss, imq_kernel, mmd_imq


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_mmd_matches_brute_force_double_sum():
    g = _gen(0)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64)
    y = torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.5
    scales = (0.3, 1.0, 2.5)

    def k(a, b):
        return sum(h * h / (h * h + float(((a - b) ** 2).sum())) for h in scales) / len(scales)

    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    xy = sum(k(x[i], y[j]) for i in range(7) for j in range(5)) / 35
    assert abs(float(mmd_imq(x, y, scales)) - (xx + yy - 2 * xy)) < 1e-12
    assert abs(float(imq_kernel(x[:1], y[:1], scales)) - k(x[0], y[0])) < 1e-12


def test_mmd_is_unbiased_under_the_null_and_positive_otherwise():
    g = _gen(1)
    null = torch.stack([mmd_imq(torch.randn(64, 2, generator=g, dtype=torch.float64),
                                torch.randn(64, 2, generator=g, dtype=torch.float64)) for _ in range(200)])
    # Zero mean under p = q (the V-statistic would be biased upwards by about 2/n ~ 0.03).
    assert abs(float(null.mean())) < 3 * float(null.std()) / 200**0.5
    alt = mmd_imq(torch.randn(64, 2, generator=g, dtype=torch.float64),
                  torch.randn(64, 2, generator=g, dtype=torch.float64) + 1.0)
    assert float(alt) > float(null.quantile(0.99))


def test_mmd_gradient_is_finite_at_coincident_points():
    x = torch.zeros(4, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 2, generator=_gen(2), dtype=torch.float64)
    MMDLoss()(x, y).backward()
    assert torch.isfinite(x.grad).all()


def test_mmd_with_too_few_samples_is_an_error_not_a_number():
    with pytest.raises(ValueError, match="at least 2 samples"):
        mmd_imq(torch.randn(1, 3), torch.randn(10, 3))
    with pytest.raises(ValueError, match="same feature dimension"):
        mmd_imq(torch.randn(5, 3), torch.randn(5, 2))
    with pytest.raises(ValueError, match="positive"):
        MMDLoss(scales=(1.0, -0.1))
