"""fit_posterior(budget=...): what each preset resolves to, explicit options winning, bad values, and accuracy."""

from __future__ import annotations

import pytest
import torch

from innverse import load, save
from innverse.amortized import SimulationStore, fit_posterior, gaussian, simulate
from innverse.amortized.ensemble import EnsemblePosterior
from innverse.train import TrainConfig

from . import simulators as S

#: a few epochs: these tests check what the presets resolve to, not the posterior's quality
FEW = {"epochs": 3}


def _linear(n: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(n, dim, generator=gen)
    return theta, theta + 0.5 * torch.randn(n, dim, generator=gen)


def test_fast_trains_one_candidate_where_the_default_races_two():
    theta, x = _linear(400, 6)   # 6 parameters: the default races splines against MAF
    prior = gaussian(0.0, 1.0, dim=6)
    default = fit_posterior(theta, x, prior=prior, training=FEW, progress=False)
    fast = fit_posterior(theta, x, prior=prior, training=FEW, progress=False, budget="fast")
    assert default.report.budget is None
    assert [c.flow["coupling"] for c in default.report.candidates] == ["spline", "autoregressive"]
    assert (default.report.training.patience, default.report.training.min_patience) == (20, 10)
    assert fast.report.budget == "fast"
    assert [c.flow["coupling"] for c in fast.report.candidates] == ["spline"]
    assert fast.report.training == default.report.training   # the training options are the user's
    wide_theta = theta[:, :2]   # 2 parameters seen through 64 features: the default races a summary network
    wide_x = torch.cat([x[:, :2], torch.randn(400, 62, generator=torch.Generator().manual_seed(1))], 1)
    assert [c.summary for c in fit_posterior(wide_theta, wide_x, training=FEW, progress=False).report.candidates] == [
        None, "MLPSummary", "MLPSummary"]   # the MLP summary at two learning rates
    assert [c.summary for c in fit_posterior(wide_theta, wide_x, training=FEW, progress=False,
                                             budget="fast").report.candidates] == [None]
    small = _linear(400, 5)   # 5 parameters: the defaults train one flow already
    assert len(fit_posterior(*small, prior=gaussian(0.0, 1.0, dim=5), training=FEW, progress=False,
                             budget="fast").report.candidates) == 1


def test_accurate_is_an_ensemble_of_five_racing_members():
    theta, x = _linear(300, 6)
    ens = fit_posterior(theta, x, prior=gaussian(0.0, 1.0, dim=6), training={"epochs": 2}, progress=False,
                        budget="accurate")
    assert isinstance(ens, EnsemblePosterior) and len(ens.members) == 5
    for member in ens.members:
        assert member.report.budget == "accurate" and len(member.report.candidates) == 2
    seeds_differ = ens.members[0].sample(20, x[0], seed=0) != ens.members[1].sample(20, x[0], seed=0)
    assert seeds_differ.any()   # the members are trained from different seeds, not copies


def test_explicit_options_win_over_the_preset():
    theta, x = _linear(300, 6)
    prior = gaussian(0.0, 1.0, dim=6)
    one = fit_posterior(theta, x, prior=prior, training=FEW, progress=False, budget="accurate", ensemble=1)
    assert not isinstance(one, EnsemblePosterior) and one.report.budget == "accurate"
    assert len(one.report.candidates) == 2
    flows = [{"blocks": 1, "hidden": [8]}, {"coupling": "affine", "blocks": 1, "hidden": [8]}]
    listed = fit_posterior(theta, x, prior=prior, flow=flows, training=FEW, progress=False, budget="fast")
    assert [c.flow["coupling"] for c in listed.report.candidates] == ["spline", "affine"]
    single = fit_posterior(theta, x, prior=prior, flow=flows[0], training=TrainConfig(epochs=3, patience=50),
                           progress=False, budget="fast")
    assert single.report.candidates[0].flow["hidden"] == [8] and single.report.training.patience == 50


@pytest.mark.parametrize("bad", ["quick", "Fast", "", 1, True, ["fast"]])
def test_bad_budgets_are_refused_naming_the_allowed_values(bad):
    theta, x = _linear(100, 2)
    with pytest.raises(ValueError, match="fit_posterior: budget must be None, 'fast' or 'accurate'") as info:
        fit_posterior(theta, x, budget=bad, progress=False)
    assert str(info.value).endswith(f"got {bad!r}")


def test_accurate_refuses_a_store_or_a_simulator(tmp_path):
    prior = gaussian(0.0, 1.0, dim=2)
    with pytest.raises(ValueError, match="budget='accurate' trains an ensemble, which needs the pairs in memory"):
        fit_posterior(simulator=S.linear_gaussian, prior=prior, budget="accurate", progress=False)
    path = tmp_path / "s.h5"
    with SimulationStore.create(path, 2, (2,), chunk_rows=128) as st:
        simulate(S.linear_gaussian, prior=prior, n=200, seed=0, store=st, progress=False)
    with pytest.raises(ValueError, match=r"budget='accurate' .* not a store or a simulator"):
        fit_posterior(store=path, prior=prior, budget="accurate", progress=False)
    # fast needs nothing in memory
    post = fit_posterior(store=path, prior=prior, training=FEW, budget="fast", progress=False)
    assert post.report.mode == "store" and post.report.budget == "fast"


def test_the_budget_is_saved_with_the_model(tmp_path):
    theta, x = _linear(200, 2)
    post = fit_posterior(theta, x, prior=gaussian(0.0, 1.0, dim=2), training=FEW, progress=False, budget="fast")
    save(post, tmp_path / "m.safetensors")
    assert load(tmp_path / "m.safetensors").report.budget == "fast"


def test_a_fast_posterior_still_recovers_the_conjugate_gaussian_posterior():
    r"""theta ~ N(0, I_2), x = theta + 0.5 eps: the posterior is N(0.8 x, 0.2 I) (sd 0.447)."""
    theta, x = _linear(4000, 2, seed=1)
    post = fit_posterior(theta, x, prior=gaussian(0.0, 1.0, dim=2), progress=False, budget="fast")
    assert post.report.budget == "fast"
    observations = torch.tensor([[0.0, 0.0], [1.0, -0.5], [-1.5, 1.0]])
    draws = post.sample(4000, observations, seed=0)   # (n, k, D)
    mean, sd = draws.mean(0), draws.std(0)
    torch.testing.assert_close(mean, 0.8 * observations, atol=0.08, rtol=0)
    torch.testing.assert_close(sd, torch.full_like(sd, 0.2 ** 0.5), atol=0.06, rtol=0)
