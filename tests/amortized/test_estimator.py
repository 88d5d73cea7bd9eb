"""PosteriorEstimator: exact rebuild from config + state dict, normalised densities, support handling."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from innverse.amortized import FlowOptions, PosteriorEstimator, box_uniform, gaussian, log_normal, product
from innverse.amortized.gaussian_start import (
    gaussian_flow,
    gaussian_head,
    gaussian_parameters,
    least_squares_start,
)
from innverse.nets import DeepSet, SetTransformer, TimeSeriesNet


def _perturb(est: PosteriorEstimator, seed: int = 0, scale: float = 0.2) -> PosteriorEstimator:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in est.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return est.eval()


CASES = {
    "identity-spline": lambda: PosteriorEstimator(3, (4,), box_uniform(-1.0, 2.0, dim=3), None,
                                                  {"blocks": 2, "hidden": [16]}),
    "identity-affine-lu": lambda: PosteriorEstimator(2, (3,), gaussian(0.0, 1.0, dim=2), None,
                                                     {"coupling": "affine", "permutation": "lu", "blocks": 3,
                                                      "hidden": [8, 8], "actnorm": True}),
    "deepset-product": lambda: PosteriorEstimator(
        3, (7, 2), product(torch.distributions.Uniform(0.0, 1.0), torch.distributions.Normal(0.0, 1.0),
                           torch.distributions.HalfNormal(1.0)), DeepSet(2, 6, hidden=8), {"blocks": 2, "hidden": [8]}),
    "set-transformer": lambda: PosteriorEstimator(2, (5, 3), log_normal(0.0, 1.0, dim=2),
                                                  SetTransformer(3, 4, dim=8, heads=2), {"blocks": 2, "hidden": [8]}),
    "time-series": lambda: PosteriorEstimator(2, (6, 1), None, TimeSeriesNet(1, 4, channels=4, hidden=5),
                                              {"blocks": 2, "hidden": [8]}),
    "one-parameter": lambda: PosteriorEstimator(1, (2,), box_uniform(0.0, 1.0, dim=1), None,
                                                {"blocks": 2, "hidden": [8]}),
}


def _data(est: PosteriorEstimator, n: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    if est.prior is not None:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            theta = est.prior.sample((n,)).float()
    else:
        theta = torch.randn(n, est.theta_dim, generator=gen)
    x = torch.randn(n, *est.x_shape, generator=gen) * 3 + 1
    if est.variable_size:
        x[0, 2:] = float("nan")
    return theta, x


@pytest.mark.parametrize("name", list(CASES))
def test_from_config_and_state_dict_reproduce_the_estimator_exactly(name):
    torch.manual_seed(0)
    est = CASES[name]()
    theta, x = _data(est, 40, 1)
    est.fit_standardization(theta, x)
    est.set_reference(x)
    _perturb(est)
    cfg = json.loads(json.dumps(est.config()))
    assert cfg["version"] == 2 and cfg["theta_dim"] == est.theta_dim
    torch.manual_seed(123)  # a different initialisation must not matter
    again = PosteriorEstimator.from_config(cfg)
    again.load_state_dict(est.state_dict())
    again.eval()
    assert torch.equal(est.log_prob(theta, x), again.log_prob(theta, x))
    h1, h2 = est.embedding(x[:3]), again.embedding(x[:3])
    assert torch.equal(h1, h2)
    s1 = est.sample_given_summaries(5, h1, torch.Generator().manual_seed(0))
    s2 = again.sample_given_summaries(5, h2, torch.Generator().manual_seed(0))
    assert torch.equal(s1, s2) and s1.shape == (5, 3, est.theta_dim)
    assert torch.equal(est.reference_summaries, again.reference_summaries)


def test_config_rejects_newer_versions_and_foreign_dicts():
    cfg = CASES["identity-spline"]().config()
    with pytest.raises(ValueError, match="newer"):
        PosteriorEstimator.from_config({**cfg, "version": 99})
    with pytest.raises(ValueError, match="not a PosteriorEstimator config"):
        PosteriorEstimator.from_config({"theta_dim": 2})
    bad = dict(cfg)
    del bad["x_shape"]
    with pytest.raises(ValueError, match="missing key 'x_shape'"):
        PosteriorEstimator.from_config(bad)


@pytest.mark.parametrize("prior", [box_uniform(-1.0, 3.0, dim=1), log_normal(0.0, 0.7, dim=1),
                                   gaussian(1.0, 2.0, dim=1)], ids=["box", "lognormal", "gaussian"])
def test_density_integrates_to_one_and_matches_samples(prior):
    """1-D: the log-density (with all Jacobians) integrates to 1 over the support and its CDF fits the samples."""
    torch.manual_seed(0)
    est = PosteriorEstimator(1, (2,), prior, None, {"blocks": 3, "hidden": [16, 16]}).double()
    theta, x = _data(est, 200, 2)
    est.fit_standardization(theta.double(), x.double())
    _perturb(est, 3, 0.3)
    xo = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    lo, hi = est.support.lower.item(), est.support.upper.item()
    u = torch.linspace(-14, 14, 40001, dtype=torch.float64)[:, None] * est.standardization.scale + est.standardization.shift
    grid, _ = est.support.inverse(u.double())
    grid = torch.unique(grid.flatten())[:, None]
    dens = est.log_prob(grid, xo.expand(grid.shape[0], -1)).exp().detach().flatten()
    g = grid.flatten()
    mass = torch.trapezoid(dens, g).item()
    assert mass == pytest.approx(1.0, abs=2e-3)
    cdf_vals = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumulative_trapezoid(dens, g)]) / mass
    samples = est.sample_given_summaries(4000, est.embedding(xo), torch.Generator().manual_seed(4))[:, 0, 0]
    assert ((samples > lo) & (samples < hi)).all()
    p = stats.kstest(samples.numpy(), lambda v: np.interp(v, g.numpy(), cdf_vals.numpy())).pvalue
    assert p > 1e-3


def test_two_dimensional_density_integrates_to_one_on_a_box():
    torch.manual_seed(0)
    est = PosteriorEstimator(2, (3,), box_uniform([0.0, -2.0], [1.0, 2.0]), None,
                             {"blocks": 3, "hidden": [16]}).double()
    theta, x = _data(est, 100, 5)
    est.fit_standardization(theta.double(), x.double())
    _perturb(est, 1, 0.3)
    # a grid uniform in the unbounded space, over the range the samples occupy (plus margins),
    # so the mass piled up near the box's edges is resolved
    xo1 = torch.tensor([[1.0, 0.0, -1.0]], dtype=torch.float64)
    u_s, _ = est.support(est.sample_given_summaries(4000, est.embedding(xo1), torch.Generator().manual_seed(0))[:, 0])
    lo, hi = u_s.min(0).values, u_s.max(0).values
    lo, hi = lo - 0.5 * (hi - lo), hi + 0.5 * (hi - lo)
    axes = [est.support.inverse(torch.stack([torch.linspace(lo[i], hi[i], 401, dtype=torch.float64)] * 2, 1))[0][:, i]
            for i in range(2)]
    grid = torch.cartesian_prod(*axes)
    xo = torch.tensor([[1.0, 0.0, -1.0]], dtype=torch.float64).expand(grid.shape[0], -1)
    dens = est.log_prob(grid, xo).exp().detach().reshape(401, 401)
    mass = torch.trapezoid(torch.trapezoid(dens, axes[1], dim=1), axes[0]).item()
    assert mass == pytest.approx(1.0, abs=1e-2)


def test_prior_dimension_mismatch_is_an_error():
    with pytest.raises(ValueError, match="theta_dim is 3"):
        PosteriorEstimator(3, (2,), box_uniform(0.0, 1.0, dim=2))
    with pytest.raises(ValueError, match="theta_dim >= 1"):
        PosteriorEstimator(0, (2,))


def test_custom_summary_without_config_gives_a_clear_error():
    class Net(torch.nn.Module):
        out_features = 3

        def forward(self, x):
            return x[:, :3]

    est = PosteriorEstimator(2, (4,), None, Net(), {"blocks": 1, "hidden": [4]})
    with pytest.raises(TypeError, match="has no config"):
        est.config()
    assert math.isfinite(est.log_prob(torch.zeros(2, 2), torch.zeros(2, 4)).sum().item())


def test_gaussian_stage_is_the_head_alone_with_its_linear_conditioner_trainable():
    est = PosteriorEstimator(3, (4,), gaussian(0.0, 1.0, dim=3), None, {"blocks": 2, "hidden": [16]})
    theta, x = _data(est, 64, 0)
    v, z = est.prepare(theta, x)
    head = gaussian_head(est)
    assert head is est.inn.blocks[0]
    with torch.no_grad():  # a non-trivial head; the couplings are still the identity (zero last layers)
        head.subnet.linear.weight.normal_(0.0, 0.3)
        head.subnet.linear.bias.normal_(0.0, 0.3)
    full = est.prepared_log_prob(v, z)
    staged = gaussian_flow(est).log_prob(v, z.flatten(1))
    assert {id(p) for p in gaussian_parameters(est)} == {id(head.subnet.linear.weight), id(head.subnet.linear.bias)}
    # a conditional Gaussian, linear in the data: mean -t e^{-s}, sd e^{-s} per coordinate
    s, t = head.transformer.split(head.subnet(z.flatten(1)))
    s = head.transformer.log_scale(s)
    gauss = torch.distributions.Normal(-t * torch.exp(-s), torch.exp(-s)).log_prob(v).sum(1)
    assert torch.allclose(staged, gauss, atol=1e-5)
    assert torch.allclose(staged, full, atol=1e-5)
    with pytest.raises(ValueError, match="head='affine', head_linear=True"):
        gaussian_flow(PosteriorEstimator(2, (2,), None, None, {"head": "none", "blocks": 1}))


def test_the_density_is_the_composition_of_its_blocks():
    """log q(theta | x) = log q_INN(v | h) + log|dv/dtheta| with v and its log-det from the support and standardisation blocks."""
    est = _perturb(CASES["identity-spline"]())
    theta, x = _data(est, 30, 3)
    est.fit_standardization(theta, x)
    v, ld = est.parameter_map(theta)
    expected = est.inn_flow.log_prob(v, est.embedding(x)) + ld
    assert torch.allclose(est.log_prob(theta, x), expected, atol=1e-5)
    assert [type(b).__name__ for b in est.parameter_map.blocks] == ["SupportTransform", "Standardization"]


def test_files_from_before_the_linear_head_still_load():
    est = PosteriorEstimator(2, (3,), None, None, {"blocks": 1, "hidden": [8], "head_linear": False})
    cfg = est.config()
    del cfg["flow"]["head_linear"]
    again = PosteriorEstimator.from_config(cfg)
    again.load_state_dict(est.state_dict())
    assert not again.flow_options.head_linear


@pytest.mark.parametrize("prior", [box_uniform(torch.zeros(2), torch.ones(2)), None])
def test_files_from_before_the_probit_support_map_load_with_the_logit_map(prior):
    """A file written when bounded parameters went through a logit reads as logit, and gives the same densities."""
    est = PosteriorEstimator(2, (3,), box_uniform(torch.zeros(2), torch.ones(2)), None,
                             {"blocks": 1, "hidden": [8], "support_interval": "logit"})
    cfg = est.config()
    del cfg["flow"]["support_interval"]
    if prior is None:        # a prior the file could not describe: the support bounds rebuild the map
        cfg["prior"] = None
    again = PosteriorEstimator.from_config(cfg)
    again.load_state_dict(est.state_dict())
    assert again.flow_options.support_interval == "logit" and again.support.interval == "logit"
    theta = torch.rand(5, 2, generator=torch.Generator().manual_seed(0))
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(again.log_prob(theta, x), est.log_prob(theta, x))
    assert PosteriorEstimator(2, (3,), prior, None, {"blocks": 1}).support.interval == "linear"   # the default now


@pytest.mark.parametrize("prior", [box_uniform(torch.zeros(2), torch.ones(2)), None])
def test_the_linear_maps_half_width_is_saved_and_files_without_it_read_as_two(prior):
    """A half-width of 4 survives the config (also when the prior is not describable and the bounds rebuild
    the map); a file written before the option existed reads with the half-width of its time, 2."""
    box = box_uniform(torch.zeros(2), torch.ones(2))
    theta = torch.rand(5, 2, generator=torch.Generator().manual_seed(0))
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    for half, drop in ((4.0, False), (2.0, True)):
        est = PosteriorEstimator(2, (3,), box, None, {"blocks": 1, "hidden": [8], "support_half_width": half})
        cfg = est.config()
        if drop:
            del cfg["flow"]["support_half_width"]
        if prior is None:
            cfg["prior"] = None
        again = PosteriorEstimator.from_config(cfg)
        again.load_state_dict(est.state_dict())
        assert again.support.half_width == half and again.flow_options.support_half_width == half
        torch.testing.assert_close(again.log_prob(theta, x), est.log_prob(theta, x))
    four = PosteriorEstimator(2, (3,), box, None, {"blocks": 1, "hidden": [8], "support_half_width": 4.0})
    u4, _ = four.support(theta.double())
    u2, _ = PosteriorEstimator(2, (3,), box, None, {"blocks": 1, "hidden": [8]}).support(theta.double())
    assert not torch.allclose(u4, u2)   # the option reaches the map


@pytest.mark.parametrize("half", [0, -2.0, float("inf"), "4", True])
def test_flow_options_refuse_a_bad_half_width(half):
    with pytest.raises(ValueError, match="FlowOptions: support_half_width must be a positive finite number or None, "
                                         "got "):
        FlowOptions(support_half_width=half)


def test_an_estimator_built_without_a_half_width_uses_two_and_its_file_says_so():
    """``None`` (the default: fit_posterior sets it from the simulations) never reaches a file."""
    box = box_uniform(torch.zeros(2), torch.ones(2))
    options = FlowOptions(blocks=1, hidden=[8])
    assert options.support_half_width is None
    est = PosteriorEstimator(2, (3,), box, None, options)
    assert est.support.half_width == 2.0 and est.config()["flow"]["support_half_width"] == 2.0
    assert options.support_half_width is None   # the caller's options are not changed


def test_least_squares_start_of_the_gaussian_head_recovers_a_linear_gaussian_model():
    gen = torch.Generator().manual_seed(0)
    est = PosteriorEstimator(3, (4,), None, None, {"blocks": 1, "hidden": [8]})
    n = 20_000
    z = 2.0 * torch.randn(n, 4, generator=gen)
    g = 10.0 * torch.tanh(z / 10.0)  # what the linear part sees (head_input_bound = 10)
    a = torch.tensor([[1.0, -0.5, 0.0], [0.3, 0.2, -1.0], [0.0, 0.0, 0.5], [-0.7, 0.1, 0.2]])
    c = torch.tensor([0.5, -1.0, 2.0])
    sigma = torch.tensor([0.1, 0.5, 2.0])
    v = g @ a + c + sigma * torch.randn(n, 3, generator=gen)
    fit = least_squares_start(est, v, z)
    assert fit.ridge <= 1e-3 and abs(fit.loo_mse - sigma.square().mean().item()) < 0.05
    head = gaussian_head(est)
    zs = torch.randn(50, 4, generator=gen)
    with torch.no_grad():
        s, t = head.transformer.split(head.subnet(zs))
        s = head.transformer.log_scale(s)
    mean, sd = -t * torch.exp(-s), torch.exp(-s)
    # estimation error of a mean ~ sigma * sqrt((1 + |z|^2 / 4) / n) < 0.03 sigma here
    assert ((mean - (10.0 * torch.tanh(zs / 10.0) @ a + c)) / sigma).abs().max() < 0.05
    assert torch.allclose(sd, sigma.expand(50, 3), rtol=0.03)
    # pure-noise features, few pairs: leave-one-out picks a strong penalty, the mean stays near the sample mean
    est = PosteriorEstimator(2, (40,), None, None, {"blocks": 1, "hidden": [8]})
    z, v = torch.randn(200, 40, generator=gen), torch.randn(200, 2, generator=gen)
    assert least_squares_start(est, v, z).ridge >= 1.0
    head = gaussian_head(est)
    with torch.no_grad():
        s, t = head.transformer.split(head.subnet(torch.randn(200, 40, generator=gen)))
    assert (-t * torch.exp(-s) - v.mean(0)).abs().max() < 0.5
    with pytest.raises(ValueError, match="no summary network"):
        least_squares_start(PosteriorEstimator(2, (5, 3), None, DeepSet(3, 4), {"blocks": 1}), v,
                            torch.randn(200, 5, 3))
    with torch.no_grad():
        head.subnet.mlp[-1].bias.fill_(0.1)
    with pytest.raises(ValueError, match="MLP part is no longer zero"):
        least_squares_start(est, v, z)


def test_wide_positive_features_are_standardised_on_the_log_scale():
    from innverse.amortized.standardize import wide_positive_features

    gen = torch.Generator().manual_seed(0)
    wide = torch.exp(3.0 * torch.randn(500, generator=gen))             # ~ 1e-4 .. 1e4
    narrow = 5.0 + torch.rand(500, generator=gen)
    with_zero = wide.clone()
    with_zero[7] = 0.0
    negative = torch.randn(500, generator=gen)
    x = torch.stack([wide, narrow, with_zero, negative], 1)
    assert wide_positive_features(x, (4,)).tolist() == [True, False, False, False]
    sets = torch.stack([wide, negative], 1).reshape(50, 10, 2)
    sets[:5, 8:] = math.nan                                             # NaN padding is ignored
    assert wide_positive_features(sets, (10, 2)).tolist() == [True, False]

    theta = torch.randn(500, 2, generator=gen)
    est = PosteriorEstimator(2, (4,), gaussian(0.0, 1.0, dim=2), None, {"blocks": 2, "hidden": [8]},
                             x_scaling="moments")
    est.fit_standardization(theta, x)
    assert est.embedding.log_features.tolist() == [True, False, False, False]
    z = est.embedding.standardize(x)
    logged = torch.log(wide.double())
    assert torch.allclose(z[:, 0].double(), (logged - logged.mean()) / logged.std(), atol=1e-5)
    assert torch.allclose(z[:, 1].double(), (narrow.double() - narrow.mean()) / narrow.double().std(), atol=1e-5)
    assert abs(float(z[:, 0].mean())) < 1e-5 and abs(float(z[:, 0].std()) - 1) < 1e-4
    bad = x[:1].clone()
    bad[0, 0] = -1.0
    with pytest.raises(ValueError, match=r"data feature 0 is standardised on the log scale.*got -1 <= 0"):
        est.embedding(bad)
    est.fit_standardization(theta, x, log_x=False)
    assert not est.embedding.log_features.any()
    with pytest.raises(ValueError, match="log_x must be 'auto' or False"):
        est.fit_standardization(theta, x, log_x="yes")


def _version_one_state(est: PosteriorEstimator) -> dict:
    """The state dict under the tensor names of format version 1 (innverse 0.1)."""
    from innverse.amortized.estimator import _V1_NAMES

    out = {}
    for key, value in est.state_dict().items():
        for old, new in _V1_NAMES:
            if key.startswith(new):
                key = old + key[len(new):]
                break
        out[key] = value
    return out


def test_files_from_before_log_scale_standardisation_still_load():
    est = CASES["identity-spline"]()
    state = {k: v for k, v in _version_one_state(est).items() if k != "x_log"}
    assert "theta_shift" in state and "flow.transform.blocks.0.subnet.linear.weight" in state
    again = PosteriorEstimator.from_config(est.config())
    again.embedding.log_features.fill_(True)
    again.load_state_dict(state)
    assert not again.embedding.log_features.any()
    theta, x = _data(est, 10, 0)
    assert torch.equal(again.log_prob(theta, x), est.log_prob(theta, x))
