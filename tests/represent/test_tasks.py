"""The generated representation-learning tasks: GIN's synthetic data and the shapes images."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from innverse.blocks import Orthogonal, RandomPermutation
from innverse.tasks.represent import SHAPES, GeneratedShapes, GINSynthetic


@pytest.mark.parametrize("mixing", ["glow", "rotation"])
def test_gin_synthetic_latents_follow_the_stated_mixture_and_the_mixing_is_invertible(mixing):
    task = GINSynthetic(seed=3, mixing=mixing)
    assert bool(((task.means > -5) & (task.means < 5)).all())
    assert bool(((task.stds > 0.5) & (task.stds < 3)).all())
    x, u, s = task.sample(6000, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert x.shape == (6000, 10) and s.shape == (6000, 10) and u.shape == (6000,)
    for k in range(5):
        rows = s[u == k]
        for i in range(2):
            standardized = (rows[:, i] - task.means[k, i]) / task.stds[k, i]
            assert stats.kstest(standardized.numpy(), "norm").pvalue > 1e-3
    assert abs(float(s[:, 2:].std()) - 0.01) < 5e-4
    recovered, _ = task.mixing.inverse(x)
    torch.testing.assert_close(recovered, s, rtol=0, atol=1e-9)
    # the mixing is nonlinear: no linear map explains the data from the latents
    design = torch.cat([s, torch.ones(6000, 1, dtype=torch.float64)], 1)
    residual = x - design @ torch.linalg.lstsq(design, x).solution
    assert float(residual.square().mean() / x.var(0).mean()) > 1e-3
    # reproducible
    x2, u2, _ = GINSynthetic(seed=3, mixing=mixing).sample(6000, torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(x2, x, rtol=0, atol=0)
    assert torch.equal(u2, u)


def test_gin_synthetic_bad_arguments():
    with pytest.raises(ValueError, match="GINSynthetic: needs informative >= 1"):
        GINSynthetic(informative=0)
    with pytest.raises(ValueError, match=r"GINSynthetic\.sample: n must be a positive int"):
        GINSynthetic().sample(0)
    with pytest.raises(ValueError, match="GINSynthetic: mixing must be 'glow' or 'rotation', got 'flow'"):
        GINSynthetic(mixing="flow")


def test_gin_synthetic_reference_mixing_couples_both_halves_with_permutations_between_blocks():
    """The reference network: each block changes both halves, and the mixing between blocks is a permutation."""
    task = GINSynthetic(seed=0)
    x = torch.randn(64, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = x
    for layer in list(task.mixing)[:3]:   # coupling, swap, coupling
        y = layer(y, log_det=False)[0]
    assert bool(((y - x).abs().amax(0) > 1e-6).all())  # no coordinate passes a block unchanged
    permutations = [m for m in task.mixing if isinstance(m, RandomPermutation)]
    assert len(permutations) == 2 * task.mixing_blocks
    assert not any(isinstance(m, Orthogonal) for m in task.mixing)


def test_generated_shapes_splits_are_fixed_and_classes_differ():
    task = GeneratedShapes()
    x, c = task.pairs("test")
    assert x.shape == (1000, 1, 16, 16) and c.shape == (1000, len(SHAPES))
    assert torch.equal(c.sum(1), torch.ones(1000))
    x2, _ = GeneratedShapes().pairs("test")
    torch.testing.assert_close(x2, x, rtol=0, atol=0)
    clean = GeneratedShapes(noise=0.0).render(torch.arange(6).repeat(50), torch.Generator().manual_seed(0))
    assert float(clean.min()) >= 0 and float(clean.max()) <= 1
    ink = clean.reshape(50, 6, -1).sum(-1).mean(0)
    assert float(ink[2]) > float(ink[3])  # a filled square has more ink than its outline
    assert float(ink[0]) > float(ink[1])  # a disc more than a ring
    with pytest.raises(ValueError, match="split must be one of"):
        task.pairs("validation")
    with pytest.raises(ValueError, match=r"GeneratedShapes\.render: expected integer labels"):
        task.render(torch.tensor([6]))


@pytest.mark.parametrize("mixing", ["glow", "rotation"])
def test_gin_synthetic_log_prob_is_the_density_of_the_generating_process(mixing):
    """log p(x|u) against the latent mixture density plus the brute-force autograd log|det ds/dx| (float64)."""
    task = GINSynthetic(seed=2, mixing=mixing)
    x, u, s = task.sample(5, torch.Generator().manual_seed(0), dtype=torch.float64)
    logp = task.log_prob(x, u)
    for i in range(5):
        jac = torch.autograd.functional.jacobian(lambda v: task.mixing.inverse(v[None], log_det=False)[0][0], x[i])
        std = torch.cat([task.stds[u[i]], torch.full((8,), 0.01, dtype=torch.float64)])
        mean = torch.cat([task.means[u[i]], torch.zeros(8, dtype=torch.float64)])
        expected = torch.distributions.Normal(mean, std).log_prob(s[i]).sum() + torch.linalg.slogdet(jac)[1]
        torch.testing.assert_close(logp[i], expected)
    with pytest.raises(ValueError, match=r"GINSynthetic.log_prob: expected x of shape \(n, 10\)"):
        task.log_prob(x[:, :9], u)
    with pytest.raises(ValueError, match=r"integer labels in 0..4"):
        task.log_prob(x, u + 5)
