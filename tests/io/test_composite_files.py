"""Save / load of composite posteriors: ensembles and the MCMC posteriors of learned likelihoods.

A loaded posterior must reproduce the saved one bit for bit: the same log-densities, the same
draws for the same seed (for a likelihood posterior: the same MCMC run), the same data masks,
MCMC settings and prior. Files whose parts do not fit are refused, and what a file cannot hold
(an undescribable prior, MCMC symmetries) is refused when saving, naming it.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest
import torch

import innverse
from innverse.amortized import (
    EnsemblePosterior,
    LikelihoodPosterior,
    MCMCConfig,
    box_uniform,
    fit_likelihood,
    gaussian,
)
from innverse.amortized.ensemble import fit_ensemble
from innverse.amortized.mcmc.sampler import log_prior_or_minus_inf
from innverse.io import ModelFileError, info
from innverse.io.format import read_model_file, write_model_file

SMALL = {"flow": {"blocks": 1, "hidden": [16]}, "training": {"epochs": 3}}
LIGHT_MCMC = MCMCConfig(chains=8, warmup=100, init_draws=500, max_rounds=1, require_convergence=False)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def ensemble() -> EnsemblePosterior:
    theta = torch.randn(300, 2, generator=_gen(0))
    x = theta + 0.5 * torch.randn(300, 2, generator=_gen(1))
    return fit_ensemble(theta, x, 2, prior=gaussian(0.0, 1.0, dim=2), **SMALL)


def _count_data(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.distributions.Distribution]:
    """theta ~ U(0, 3)^2; x: a Poisson count (dequantised), a positive feature over six decades (logged), a Gaussian."""
    prior = box_uniform(0.0, 3.0, dim=2)
    theta = prior.sample((n,))
    counts = torch.poisson(theta[:, :1].exp(), generator=_gen(2))
    wide = torch.exp(4.0 * theta[:, 1:] + 0.3 * torch.randn(n, 1, generator=_gen(3)))
    return theta, torch.cat([counts, wide, theta[:, :1] + torch.randn(n, 1, generator=_gen(4))], 1), prior


def _fit(members: int) -> LikelihoodPosterior:
    theta, x, prior = _count_data(400)
    return fit_likelihood(theta, x, prior, mcmc=LIGHT_MCMC, ensemble=members, **SMALL)


@pytest.fixture(scope="module")
def likelihood() -> LikelihoodPosterior:
    return _fit(1)


@pytest.fixture(scope="module")
def ensemble_likelihood() -> LikelihoodPosterior:
    return _fit(2)


def test_an_ensemble_round_trips_bit_for_bit(ensemble, tmp_path):
    path = innverse.save(ensemble, tmp_path / "ensemble.safetensors")
    assert info(path)["kind"] == "EnsemblePosterior"
    loaded = innverse.load(path)
    assert isinstance(loaded, EnsemblePosterior) and len(loaded.members) == 2
    theta, x = torch.randn(7, 2, generator=_gen(5)), torch.randn(7, 2, generator=_gen(6))
    assert torch.equal(loaded.log_prob(theta, x), ensemble.log_prob(theta, x))
    assert torch.equal(loaded.sample(50, x[0], seed=3), ensemble.sample(50, x[0], seed=3))
    assert torch.equal(loaded.disagreement(x[:2], n=200), ensemble.disagreement(x[:2], n=200))
    for old, new in zip(ensemble.members, loaded.members, strict=True):
        assert new.report.to_dict() == old.report.to_dict()
        assert type(new.prior) is type(old.prior)
        torch.testing.assert_close(new.prior.log_prob(theta), old.prior.log_prob(theta), rtol=0, atol=0)


@pytest.mark.parametrize("which", ["likelihood", "ensemble_likelihood"])
def test_a_likelihood_posterior_round_trips_bit_for_bit(which, request, tmp_path):
    likelihood = request.getfixturevalue(which)
    assert bool(likelihood.dequantized[0]) and bool(likelihood.logged[1])   # the masks the file must keep
    path = innverse.save(likelihood, tmp_path / "nle.safetensors")
    assert info(path)["kind"] == "LikelihoodPosterior"
    loaded = innverse.load(path)
    assert isinstance(loaded, LikelihoodPosterior)
    assert type(loaded.likelihood) is type(likelihood.likelihood)
    assert loaded.mcmc == likelihood.mcmc
    assert torch.equal(loaded.dequantized, likelihood.dequantized) and torch.equal(loaded.logged, likelihood.logged)
    theta, x, _ = _count_data(9)
    assert torch.equal(loaded.log_likelihood(x, theta), likelihood.log_likelihood(x, theta))
    assert torch.equal(loaded.unnormalized_log_prob(theta, x[0]), likelihood.unnormalized_log_prob(theta, x[0]))
    probe = torch.tensor([[-0.5, 1.0], [1.0, 3.5], [1.0, 1.0]])   # outside, outside, inside the prior's box
    assert torch.equal(log_prior_or_minus_inf(loaded.prior, probe), log_prior_or_minus_inf(likelihood.prior, probe))
    assert torch.equal(loaded.sample(40, x[0], seed=1), likelihood.sample(40, x[0], seed=1))


def test_a_likelihood_posterior_with_an_undescribable_prior_needs_it_back(likelihood, tmp_path):
    class Wrapped(torch.distributions.Distribution):   # a prior innverse cannot describe
        arg_constraints: ClassVar[dict] = {}

        def __init__(self, base):
            super().__init__(base.batch_shape, base.event_shape, validate_args=False)
            self.base = base

        @property
        def support(self):
            return self.base.support

        def sample(self, sample_shape=()):
            return self.base.sample(sample_shape)

        def log_prob(self, value):
            return self.base.log_prob(value)

    post = LikelihoodPosterior(likelihood.likelihood, Wrapped(likelihood.prior), likelihood.mcmc,
                               likelihood.dequantized, likelihood.logged)
    with pytest.raises(TypeError, match=r"cannot save the prior of the LikelihoodPosterior.*Wrapped.*omit_prior=True"):
        innverse.save(post, tmp_path / "refused.safetensors")
    path = innverse.save(post, tmp_path / "nle.safetensors", omit_prior=True)
    with pytest.raises(ValueError, match=r"saved without its prior \(a .*Wrapped\).*pass prior="):
        innverse.load(path)
    loaded = innverse.load(path, prior=likelihood.prior)
    theta, x, _ = _count_data(5)
    assert torch.equal(loaded.unnormalized_log_prob(theta, x[0]), likelihood.unnormalized_log_prob(theta, x[0]))


def test_mcmc_symmetries_are_refused_when_saving(likelihood, tmp_path):
    post = LikelihoodPosterior(likelihood.likelihood, likelihood.prior,
                               dataclasses.replace(LIGHT_MCMC, symmetries=(torch.neg,)),
                               likelihood.dequantized, likelihood.logged)
    with pytest.raises(TypeError, match="symmetries \\(functions\\), which a file cannot hold"):
        innverse.save(post, tmp_path / "refused.safetensors")


def _rewrite(path, tmp_path, change):
    """A copy of the model file at ``path`` with its config and tensors changed by ``change`` (and a valid hash)."""
    envelope, tensors = read_model_file(path)
    config = change(envelope["config"], tensors)
    return write_model_file(tmp_path / "changed.safetensors", envelope["kind"], config, tensors,
                            envelope["innverse_version"])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c, t: {**c, "likelihood_kind": "Flow"}, "likelihood kind 'Flow'"),
        (lambda c, t: {**c, "logged": c["logged"][:1]}, "no valid 'logged' mask"),
        (lambda c, t: {**c, "dequantized": [1, 0, 0]}, "no valid 'dequantized' mask"),
        (lambda c, t: {**c, "mcmc": {**c["mcmc"], "stride": 3}}, "MCMC settings .* are invalid"),
        (lambda c, t: {**c, "mcmc": {**c["mcmc"], "chains": "many"}}, "chains must be of type int, got 'many'"),
        (lambda c, t: t.update(extra=torch.zeros(2)) or c, "tensors no part of its LikelihoodPosterior uses"),
        (lambda c, t: t.pop(next(iter(t))) is None or c, "do not fit"),
    ],
    ids=["kind", "short-mask", "non-boolean-mask", "unknown-mcmc-key", "mcmc-type", "extra-tensor", "missing-tensor"],
)
def test_malformed_likelihood_files_are_refused(likelihood, tmp_path, change, match):
    path = innverse.save(likelihood, tmp_path / "nle.safetensors")
    with pytest.raises(ModelFileError, match=match):
        innverse.load(_rewrite(path, tmp_path, change))


def test_malformed_ensemble_files_are_refused(ensemble, tmp_path):
    path = innverse.save(ensemble, tmp_path / "ensemble.safetensors")
    with pytest.raises(ModelFileError, match="without members"):
        innverse.load(_rewrite(path, tmp_path, lambda c, t: {"members": []}))
    with pytest.raises(ModelFileError, match="tensors no part of its EnsemblePosterior uses"):
        innverse.load(_rewrite(path, tmp_path, lambda c, t: {"members": c["members"][:1]}))
