"""Posterior API: shapes for one and many observations, numpy input, MAP, summaries, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from innverse.amortized import Posterior, PosteriorEstimator, box_uniform, log_normal
from innverse.nets import DeepSet


def _posterior(summary=None, x_shape=(3,), prior=None, seed=0) -> Posterior:
    torch.manual_seed(seed)
    prior = prior or box_uniform([-1.0, 0.0], [1.0, 2.0])
    est = PosteriorEstimator(2, x_shape, prior, summary, {"blocks": 2, "hidden": [16]}, reference_size=10)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        theta = prior.sample((50,))
    x = torch.randn(50, *x_shape, generator=gen)
    est.fit_standardization(theta, x)
    est.set_reference(x)
    with torch.no_grad():
        for p in est.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
    return Posterior(est, chunk_size=1000)


def test_sample_shapes_support_and_reproducibility():
    post = _posterior()
    one = post.sample(500, torch.zeros(3), seed=1)
    assert one.shape == (500, 2)
    many = post.sample(700, np.random.default_rng(0).normal(size=(4, 3)), seed=1)  # numpy, chunked (700*4 > 1000)
    assert many.shape == (700, 4, 2)
    for s in (one, many.reshape(-1, 2)):
        assert (s[:, 0] > -1).all() and (s[:, 0] < 1).all() and (s[:, 1] > 0).all() and (s[:, 1] < 2).all()
    assert torch.equal(post.sample(500, torch.zeros(3), seed=1), one)
    assert not torch.equal(post.sample(500, torch.zeros(3), seed=2), one)


def test_batched_samples_match_per_observation_samples_in_distribution():
    post = _posterior()
    xs = torch.tensor([[0.0, 1.0, -1.0], [2.0, -2.0, 0.5]])
    batched = post.sample(4000, xs, seed=0)
    for j in range(2):
        single = post.sample(4000, xs[j], seed=10 + j)
        for d in range(2):
            assert stats.ks_2samp(batched[:, j, d].numpy(), single[:, d].numpy(), method="asymp").pvalue > 1e-3
    # the two observations' posteriors do differ, so the test above could fail
    assert stats.ks_2samp(batched[:, 0, 0].numpy(), batched[:, 1, 0].numpy(), method="asymp").pvalue < 1e-6


def test_log_prob_shapes_and_consistency():
    post = _posterior()
    xs = torch.randn(3, 3, generator=torch.Generator().manual_seed(4))
    theta = post.sample(5, xs, seed=0)                      # (5, 3, 2)
    lp = post.log_prob(theta, xs)
    assert lp.shape == (5, 3) and torch.isfinite(lp).all()
    for j in range(3):
        assert torch.allclose(post.log_prob(theta[:, j], xs[j]), lp[:, j], atol=1e-5)
    assert post.log_prob(theta[0, 0], xs[0]).shape == ()
    assert torch.allclose(post.log_prob(theta[:, 0].numpy(), xs[0].numpy()), lp[:, 0], atol=1e-5)


def test_theta_outside_support_gives_minus_inf_or_errors_on_request():
    post = _posterior()
    theta = torch.tensor([[0.0, 1.0], [1.5, 1.0], [0.0, -0.1]])
    lp = post.log_prob(theta, torch.zeros(3))                        # the default, as torch.distributions and sbi
    assert torch.isfinite(lp[0]) and lp[1] == -torch.inf and lp[2] == -torch.inf
    assert torch.equal(post.log_prob(theta, torch.zeros(3), outside="-inf"), lp)
    with pytest.raises(ValueError, match=r"rows \[1, 2\] lie outside the prior's support"):
        post.log_prob(theta, torch.zeros(3), outside="error")
    with pytest.raises(ValueError, match="outside must be '-inf' or 'error', got 'ignore'"):
        post.log_prob(theta, torch.zeros(3), outside="ignore")


def test_sample_shapes_like_torch_distributions():
    post = _posterior()
    xs = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    assert post.sample((5,), xs[0]).shape == (5, 2) and post.sample((2, 3), xs[0]).shape == (2, 3, 2)
    assert post.sample((2, 3), xs).shape == (2, 3, 4, 2) and post.sample((), xs[0]).shape == (2,)
    assert post.sample((0,), xs).shape == (0, 4, 2)
    # a shape is the same draws as n = its size, reshaped
    torch.testing.assert_close(post.sample((2, 3), xs, seed=5), post.sample(6, xs, seed=5).reshape(2, 3, 4, 2))
    with pytest.raises(ValueError, match=r"n must be a positive int or a shape .*got \(2, -1\)"):
        post.sample((2, -1), xs)
    with pytest.raises(ValueError, match="n must be a positive int or a shape"):
        post.sample("3", xs)


def test_a_leading_dimension_of_one_is_a_batch_of_one():
    """innverse's contract: x (1, *x_shape) is one observation in a batch, unlike sbi's sample (see to_sbi)."""
    post = _posterior()
    x = torch.tensor([[0.5, -0.2, 1.0]])
    assert post.sample(10, x).shape == (10, 1, 2) and post.sample(10, x[0]).shape == (10, 2)
    assert torch.equal(post.sample(10, x, seed=1)[:, 0], post.sample(10, x[0], seed=1))
    theta = post.sample(6, x[0], seed=2)
    assert post.log_prob(theta[:, None], x).shape == (6, 1)
    torch.testing.assert_close(post.log_prob(theta[:, None], x)[:, 0], post.log_prob(theta, x[0]))


def test_default_x_batched_calls_and_device():
    post = _posterior()
    xs = torch.randn(3, 3, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="x is None and no default observation is set; pass x or call set_default_x"):
        post.sample(5)
    assert post.default_x is None
    assert post.set_default_x(xs[0]) is post and torch.equal(post.default_x, xs[0])
    assert torch.equal(post.sample(5, seed=3), post.sample(5, xs[0], seed=3))
    theta = post.sample(4, seed=0)
    torch.testing.assert_close(post.log_prob(theta), post.log_prob(theta, xs[0]))
    post.set_default_x(xs)                                           # a batch as the default
    assert post.sample(5).shape == (5, 3, 2)
    with pytest.raises(ValueError, match=r"Posterior.set_default_x: expected x as one observation"):
        post.set_default_x(torch.zeros(5))
    # batched variants keep the batch dimension for a single observation too
    assert post.sample_batched(5, xs[0]).shape == (5, 1, 2) and post.sample_batched((2,), xs).shape == (2, 3, 2)
    assert torch.equal(post.sample_batched(5, xs, seed=1), post.sample(5, xs, seed=1))
    t = post.sample(7, xs, seed=0)
    assert torch.equal(post.log_prob_batched(t, xs), post.log_prob(t, xs))
    assert post.log_prob_batched(t[:, :1], xs[0]).shape == (7, 1)
    assert post.to("cpu") is post and post.device == torch.device("cpu")
    with pytest.raises(ValueError, match=r"Posterior\.to: device='nonsense' is not a device"):
        post.to("nonsense")


def test_wrong_shapes_and_dtypes_are_clear_errors():
    post = _posterior()
    with pytest.raises(ValueError, match=r"expected x as one observation \(3,\) or a batch"):
        post.sample(10, torch.zeros(4))
    with pytest.raises(ValueError, match="expected x as"):
        post.sample(10, torch.zeros(2, 2, 3))
    with pytest.raises(TypeError, match="real numbers"):
        post.sample(10, np.array(["a", "b", "c"]))
    with pytest.raises(TypeError, match="real numbers"):
        post.sample(10, torch.zeros(3, dtype=torch.complex64))
    with pytest.raises(ValueError, match="NaN or Inf"):
        post.sample(10, torch.tensor([0.0, float("nan"), 1.0]))
    with pytest.raises(ValueError, match="n must be a positive int"):
        post.sample(0, torch.zeros(3))
    with pytest.raises(ValueError, match=r"theta of shape \(\*sample, 2\) for one observation, got shape \(4, 3\)"):
        post.log_prob(torch.zeros(4, 3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"theta of shape \(\*sample, 2, 2\) for observations of batch shape \(2,\)"):
        post.log_prob(torch.zeros(4, 2), torch.zeros(2, 3))
    with pytest.raises(TypeError, match=r"the order is sample\(n, condition\)"):
        post.sample(torch.zeros(3), 10)
    with pytest.raises(ValueError, match="NaN or Inf"):
        post.log_prob(torch.tensor([[0.0, float("nan")]]), torch.zeros(3))


def test_map_beats_the_best_sample_and_stays_inside():
    post = _posterior(prior=log_normal(0.0, 0.5, dim=2))
    xs = torch.randn(2, 3, generator=torch.Generator().manual_seed(1))
    m = post.map(xs, n_init=200, steps=30)
    assert m.shape == (2, 2) and (m > 0).all()
    samples = post.sample(200, xs, seed=0)
    best = post.log_prob(samples, xs).max(0).values
    assert (post.log_prob(m.unsqueeze(0), xs)[0] >= best - 1e-4).all()
    assert post.map(xs[0], n_init=50, steps=10).shape == (2,)


def test_summaries_and_reference_for_sets_of_any_size():
    post = _posterior(summary=DeepSet(2, 5, hidden=8), x_shape=(6, 2))
    assert post.reference_summaries.shape == (10, 5)
    one = torch.randn(4, 2)                              # an unpadded set of 4 elements
    assert post.summaries(one).shape == (5,)
    padded = torch.cat([one, torch.full((9, 2), float("nan"))])
    assert torch.allclose(post.summaries(padded), post.summaries(one), atol=1e-6)
    batch = torch.randn(3, 11, 2)
    batch[0, 7:] = float("nan")
    assert post.summaries(batch).shape == (3, 5)
    assert post.sample(20, batch, seed=0).shape == (20, 3, 2)
    bad = batch.clone()
    bad[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="partly-NaN"):
        post.sample(5, bad)


def test_outlier_detector_warns_for_observations_unlike_the_simulations():
    from innverse.diagnostics import SummaryOutlierDetector

    post = _posterior()
    gen = torch.Generator().manual_seed(3)
    ref = post.summaries(torch.randn(400, 3, generator=gen))
    post.attach_detector(SummaryOutlierDetector(ref, level=0.01, seed=0))
    post.sample(5, torch.randn(3, generator=gen))                   # in distribution: no warning
    with pytest.warns(RuntimeWarning, match=r"observation\(s\) \[1\]"):
        post.sample(5, torch.stack([torch.zeros(3), torch.full((3,), 40.0)]))
    with pytest.raises(TypeError, match="flags"):
        post.attach_detector(object())


def test_from_state_rebuilds_the_posterior():
    post = _posterior()
    again = Posterior.from_state(post.config(), post.estimator.state_dict())
    assert torch.equal(again.sample(7, torch.ones(3), seed=3), post.sample(7, torch.ones(3), seed=3))
