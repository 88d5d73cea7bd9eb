"""fit_posterior: offline from memory and from a store, online, bad training data, analytic posteriors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from innverse.amortized import (
    Posterior,
    PosteriorEstimator,
    SimulationStore,
    fit_posterior,
    gaussian,
    simulate,
)
from innverse.nets import MLP

from . import simulators as S

SMALL = {"coupling": "affine", "blocks": 4, "hidden": [32, 32]}  # the posterior is Gaussian


def _linear_data(n: int, seed: int = 0):
    prior = gaussian(0.0, 1.0, dim=2)
    sims = simulate(S.linear_gaussian, prior=prior, n=n, seed=seed, progress=False)
    return prior, sims.theta, sims.x


def _check_conjugate(post: Posterior, tol_mean: float, tol_sd: float) -> None:
    """Prior N(0, I), x = theta + 0.5 eps: posterior N(0.8 x, 0.2 I)."""
    xs = torch.tensor([[0.0, 0.0], [1.0, -1.5], [-2.0, 0.5]])
    s = post.sample(4000, xs, seed=0)
    assert torch.allclose(s.mean(0), 0.8 * xs, atol=tol_mean)
    assert torch.allclose(s.std(0), torch.full((3, 2), math.sqrt(0.2)), rtol=tol_sd)
    corr = torch.stack([torch.corrcoef(s[:, j].T)[0, 1] for j in range(3)])
    assert corr.abs().max() < 0.1
    # log_prob against the analytic density (up to the estimate's error)
    exact = torch.distributions.Normal(0.8 * xs[1], math.sqrt(0.2)).log_prob(s[:200, 1]).sum(-1)
    assert (post.log_prob(s[:200, 1], xs[1]) - exact).abs().mean() < 0.15


def test_offline_in_memory_recovers_the_conjugate_posterior(tmp_path):
    prior, theta, x = _linear_data(3000)
    seen = []
    post = fit_posterior(theta.numpy(), x.numpy(), prior=prior, flow=SMALL, training={"epochs": 20, "batch_size": 64},
                         log_path=tmp_path / "log.jsonl", callbacks=[seen.append], progress=False)
    _check_conjugate(post, 0.08, 0.12)
    assert post.report.mode == "memory" and post.report.training_pairs == 3000
    assert post.report.training.batch_size == 64 and post.report.training.epochs == 20
    assert len(seen) == post.history.epochs == len((tmp_path / "log.jsonl").read_text().splitlines())
    assert post.reference_summaries.shape == (2000, 2)
    cfg = post.config()
    again = PosteriorEstimator.from_config(cfg)
    again.load_state_dict(post.estimator.state_dict())
    assert torch.equal(Posterior(again).sample(10, x[0], seed=1), post.sample(10, x[0], seed=1))


def test_offline_from_a_store(tmp_path):
    prior = gaussian(0.0, 1.0, dim=2)
    path = tmp_path / "train.h5"
    with SimulationStore.create(path, 2, (2,), chunk_rows=256) as st:
        simulate(S.linear_gaussian, prior=prior, n=3000, seed=0, store=st, progress=False)
    post = fit_posterior(store=path, prior=prior, flow=SMALL, training={"epochs": 20, "batch_size": 64}, progress=False)
    assert post.report.mode == "store"
    _check_conjugate(post, 0.08, 0.12)


def test_online_training_simulates_fresh_data_every_epoch():
    prior = gaussian(0.0, 1.0, dim=2)
    post = fit_posterior(prior=prior, simulator=S.linear_gaussian, simulations_per_epoch=1000,
                         validation_simulations=500, flow=SMALL, training={"epochs": 20, "batch_size": 64}, progress=False)
    assert post.report.mode == "online"
    _check_conjugate(post, 0.1, 0.15)


def test_bad_training_data_is_an_error_or_a_counted_drop():
    prior, theta, x = _linear_data(200)
    bad_x = x.clone()
    bad_x[[3, 17], 1] = float("nan")
    with pytest.raises(ValueError, match=r"2 training pairs contain NaN/Inf \(rows \[3, 17\]"):
        fit_posterior(theta, bad_x, prior=prior, progress=False)
    post = fit_posterior(theta, bad_x, prior=prior, drop_invalid=True, flow={"blocks": 1, "hidden": [8]},
                         training={"epochs": 1}, progress=False)
    assert post.report.dropped_invalid == 2
    box = torch.distributions.Independent(torch.distributions.Uniform(-torch.ones(2), torch.ones(2)), 1)
    with pytest.raises(ValueError, match="outside the prior's support"):
        fit_posterior(theta * 3, x, prior=box, progress=False)
    with pytest.raises(ValueError, match="theta has 200 rows but x has 199"):
        fit_posterior(theta, x[:-1], prior=prior, progress=False)
    with pytest.raises(TypeError, match="real numbers"):
        fit_posterior(theta, np.array([["a", "b"]] * 200), prior=prior, progress=False)
    with pytest.raises(ValueError, match="exactly one data source"):
        fit_posterior(theta, x, prior=prior, simulator=S.linear_gaussian, progress=False)
    with pytest.raises(ValueError, match="unknown option"):
        fit_posterior(theta, x, prior=prior, training={"epoch": 3}, progress=False)
    with pytest.raises(ValueError, match="summary must be"):
        fit_posterior(theta, x, prior=prior, summary="resnet", progress=False)


def test_time_series_summary_end_to_end():
    from innverse.amortized import product
    from innverse.nets import TimeSeriesNet

    prior = product(torch.distributions.Uniform(-1.0, 1.0), torch.distributions.LogNormal(-1.0, 0.5))
    sims = simulate(S.drift_series, prior=prior, n=1500, seed=0, progress=False)
    assert torch.isnan(sims.x).any()                           # NaN padding passes validation
    post = fit_posterior(sims.theta, sims.x, prior=prior, summary="time_series",
                         summary_options={"channels": 8, "hidden": 16, "out_features": 8},
                         flow={"blocks": 2, "hidden": [32]}, training={"epochs": 8}, progress=False)
    assert isinstance(post.estimator.summary, TimeSeriesNet)
    s = post.sample(500, sims.x[:4], seed=0)
    assert s.shape == (500, 4, 2) and (s[..., 1] > 0).all() and (s[..., 0].abs() < 1).all()
    # the drift is learned: posterior means follow the true drifts of strongly different series
    theta = torch.tensor([[-0.8, 0.2], [0.8, 0.2]])
    x = S.drift_series(theta, torch.Generator().manual_seed(1))
    m = post.sample(1000, x, seed=1).mean(0)
    assert m[0, 0] < -0.3 and m[1, 0] > 0.3


def test_the_result_depends_on_the_seed_not_on_the_global_random_state():
    gen = torch.Generator().manual_seed(0)
    theta = torch.randn(300, 2, generator=gen)
    x = theta + 0.1 * torch.randn(300, 2, generator=gen)
    draws = []
    for global_seed, seed in ((1, 0), (2, 0), (1, 1)):
        torch.manual_seed(global_seed)
        post = fit_posterior(theta, x, seed=seed, training={"epochs": 2}, progress=False)
        draws.append(post.sample(5, x[0], seed=0))
    assert torch.equal(draws[0], draws[1])
    assert not torch.equal(draws[0], draws[2])


def test_gaussian_start_keeps_the_gaussian_fit_unless_the_couplings_beat_it():
    """A Gaussian posterior, few pairs and wide couplings: the couplings only overfit, the Gaussian fit is kept."""
    gen = torch.Generator().manual_seed(0)
    theta = torch.randn(1000, 10, generator=gen)
    x = theta + 0.5 * torch.randn(1000, 10, generator=gen)           # posterior N(0.8 x, 0.2 I)
    post = fit_posterior(theta, x, prior=gaussian(0.0, 1.0, dim=10), flow={"blocks": 4, "hidden": [128, 128]},
                         progress=False)
    start = post.report.gaussian_start
    assert start.kept and start.best_val_loss <= post.history.best_val_loss and start.ridge is not None
    # the couplings are back at their start, the identity: every conditioner's last layer is zero
    nets = [m for block in list(post.estimator.inn)[1:] for m in block.modules() if isinstance(m, MLP)]
    assert len(nets) == 4 and all(not net[-1].weight.detach().any() for net in nets)
    xs = torch.tensor([[0.0] * 10, [0.5, -0.5] * 5])
    s = post.sample(4000, xs, seed=0)
    assert torch.allclose(s.mean(0), 0.8 * xs, atol=0.1)
    assert torch.allclose(s.std(0), torch.full((2, 10), math.sqrt(0.2)), rtol=0.1)
    # a bimodal posterior: the couplings win, and the result is the full model
    gen = torch.Generator().manual_seed(0)
    th = torch.randn(3000, 2, generator=gen)
    xb = th.square().sum(1, keepdim=True) + 0.05 * torch.randn(3000, 1, generator=gen)
    post = fit_posterior(th, xb, flow={"hidden": [32, 32]}, training={"epochs": 40}, progress=False)
    assert not post.report.gaussian_start.kept
    assert post.history.best_val_loss < post.report.gaussian_start.best_val_loss - 0.3
    assert fit_posterior(th, xb, gaussian_start=False, training={"epochs": 1}, progress=False).report.gaussian_start is None


def test_default_batch_size_follows_the_budget_the_parameter_count_and_the_summary_network():
    from innverse.amortized import default_training
    from innverse.train import TrainConfig

    assert default_training(900, 2).batch_size == 256      # few parameters: ~n/4
    assert default_training(900, 10).batch_size == 128     # more parameters: ~n/8
    assert default_training(9000, 2).batch_size == default_training(9000, 10).batch_size == 512
    assert default_training(900, 2, summary=True).batch_size == 64  # a summary network: ~n/16, at most 256
    assert default_training(90_000, 2, summary=True).batch_size == 256
    assert default_training(20, 2).batch_size == 32
    # learning rate: 1e-3 up to 256 rows, then linear in the batch
    assert default_training(900, 2).lr == default_training(90_000, 2, summary=True).lr == 1e-3
    assert default_training(9000, 2).lr == 2e-3
    # under a wall-time budget the default learning rate doubles; one the caller set is kept
    assert default_training(9000, 2, training={"max_seconds": 5.0}).lr == 4e-3
    assert default_training(900, 2, summary=True, training=TrainConfig(max_seconds=5.0)).lr == 2e-3
    assert default_training(9000, 2, training={"max_seconds": 5.0, "lr": 3e-4}).lr == 3e-4
    timed = fit_posterior(*_linear_data(200)[1:], training={"max_seconds": 0.5}, progress=False).report.training
    assert timed.lr == 2e-3 and timed.max_seconds == 0.5
    for n in (20, 900, 9000, 90_000):
        cfg = default_training(n, 2)
        assert 60 <= cfg.epochs <= 1000 and cfg.epochs * math.ceil(n / cfg.batch_size) >= min(
            12_000, 60 * math.ceil(n / cfg.batch_size))


def test_every_form_of_the_training_options_gets_the_same_budget_aware_defaults():
    """A TrainConfig, a dict and nothing resolve the unset options alike; the report shows what was used."""
    from innverse.train import TrainConfig

    gen = torch.Generator().manual_seed(3)
    th = torch.randn(300, 2, generator=gen)
    x = th + 0.1 * torch.randn(300, 2, generator=gen)
    used = [fit_posterior(th, x, training=training, gaussian_start=False, progress=False).report.training
            for training in ({"epochs": 2, "patience": 7}, TrainConfig(epochs=2, patience=7), {"epochs": 2})]
    assert used[0] == used[1] and used[0].batch_size == 64 and used[0].lr == 1e-3
    assert [(c.patience, c.min_patience) for c in used] == [(7, 10), (7, 10), (20, 10)]
    assert used[2].replace(patience=7) == used[0]


def _correlated_linear_gaussian(n: int, dim: int = 6):
    """theta ~ N(0, I), x = A theta + 0.5 eps with a mixing A: a correlated Gaussian posterior."""
    gen = torch.Generator().manual_seed(1)
    a = torch.eye(dim) + 0.8 * torch.randn(dim, dim, generator=gen) / math.sqrt(dim)
    theta = torch.randn(n, dim, generator=gen)
    x = theta @ a.T + 0.5 * torch.randn(n, dim, generator=gen)
    prec = torch.eye(dim) + a.T @ a / 0.25
    cov = torch.linalg.inv(prec)
    return theta, x, cov @ a.T / 0.25, cov


def test_flow_selection_keeps_the_candidate_with_the_lower_validation_loss(tmp_path):
    """6+ parameters, default flow: spline couplings and MAF both train; the better on validation data is kept."""
    theta, x, gain, cov = _correlated_linear_gaussian(2000)
    ckpt = tmp_path / "fit.ckpt"
    log = tmp_path / "log.jsonl"
    post = fit_posterior(theta, x, prior=gaussian(0.0, 1.0, dim=6), training={"epochs": 25}, checkpoint=ckpt,
                         log_path=log, progress=False)
    report = post.report
    assert report.compared_flows and [c.flow["coupling"] for c in report.candidates] == ["spline", "autoregressive"]
    assert report.candidates[1].flow["head"] == "none"
    assert report.chosen == min(range(2), key=lambda i: report.candidates[i].theta_val_loss)
    assert post.estimator.flow_options.coupling == report.candidates[report.chosen].flow["coupling"]
    assert ckpt.is_file() and (tmp_path / "fit.candidate1.ckpt").is_file()
    assert [c.log_path for c in report.candidates] == [str(log), str(tmp_path / "log.candidate1.jsonl")]
    for c in report.candidates:
        assert len(Path(c.log_path).read_text().splitlines()) == c.epochs
    xs = x[:2]
    s = post.sample(4000, xs, seed=0)
    sd = cov.diagonal().sqrt()                                          # 0.39 - 0.75
    assert ((s.mean(0) - xs @ gain.T).abs() / sd).max() < 0.5
    assert torch.allclose(torch.cov(s[:, 0].T), cov, atol=0.05)
    # resuming finished runs reproduces the choice and the weights
    again = fit_posterior(theta, x, prior=gaussian(0.0, 1.0, dim=6), training={"epochs": 25}, checkpoint=ckpt,
                          resume=True, progress=False)
    assert [c.val_loss for c in again.report.candidates] == [c.val_loss for c in report.candidates]
    assert torch.equal(again.sample(10, xs, seed=3), post.sample(10, xs, seed=3))


def test_flow_selection_only_by_default_for_many_parameters_and_on_request(tmp_path):
    theta, x, _, _ = _correlated_linear_gaussian(400, dim=3)
    assert not fit_posterior(theta, x, training={"epochs": 2}, progress=False).report.compared_flows
    theta6, x6, _, _ = _correlated_linear_gaussian(400)
    one = fit_posterior(theta6, x6, flow={"blocks": 2}, training={"epochs": 2}, progress=False)
    assert not one.report.compared_flows and one.estimator.flow_options.blocks == 2
    two = fit_posterior(theta, x, flow=[{"coupling": "affine", "blocks": 2}, {"coupling": "autoregressive", "blocks": 1}],
                        training={"epochs": 2}, gaussian_start=True, progress=False)
    assert [c.flow["blocks"] for c in two.report.candidates] == [2, 1]
    import innverse

    again = innverse.load(innverse.save(two, tmp_path / "two.safetensors"))      # the record is saved too
    assert again.report == two.report                                             # the whole report is saved
    assert again.estimator.flow_options == two.estimator.flow_options
    with pytest.raises(ValueError, match="flow is an empty list"):
        fit_posterior(theta, x, flow=[], progress=False)


def test_log_normal_data_are_learned_on_the_log_scale():
    """x = exp(3 theta + 0.1 eps): logged, the posterior is the linear-Gaussian one; raw, 30 epochs get nowhere."""
    gen = torch.Generator().manual_seed(0)
    theta = torch.randn(2000, 2, generator=gen)
    x = torch.exp(3.0 * theta + 0.1 * torch.randn(2000, 2, generator=gen))
    xs = torch.exp(torch.tensor([[-4.0, 0.0], [2.0, 5.0]]))
    mean, sd = torch.log(xs) / 3 * (900 / 901), math.sqrt(1 / 901)       # posterior N(mean, sd^2)
    errors = {}
    for log_x in ("auto", False):
        post = fit_posterior(theta, x, prior=gaussian(0.0, 1.0, dim=2), training={"epochs": 30}, log_x=log_x,
                             progress=False)
        assert post.report.log_features == ([0, 1] if log_x == "auto" else [])
        s = post.sample(2000, xs, seed=0)
        errors[log_x] = float(((s.mean(0) - mean).abs() / sd).max())
        if log_x == "auto":
            assert torch.allclose(s.std(0), torch.full((2, 2), sd), rtol=0.2)
    assert errors["auto"] < 0.5 and errors[False] > 5.0


def test_a_time_budget_is_raced_for_by_the_candidates_and_the_winner_gets_the_rest(tmp_path):
    """6 parameters, two candidate flows, 1,000 epochs planned: the 2 s budget, not the epochs, ends training.

    Both candidates train for 0.25 s each (RACE_SHARE of the budget, halved), then the better one
    continues for the remaining ~1.5 s; its log holds both runs.
    """
    theta, x, gain, cov = _correlated_linear_gaussian(2000)
    # a process's first torch optimiser imports torch._dynamo (1-2 s), which would eat the race's share here
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    budget, log = 2.0, tmp_path / "log.jsonl"
    post = fit_posterior(theta, x, prior=gaussian(0.0, 1.0, dim=6), progress=False, log_path=log,
                         checkpoint=tmp_path / "fit.ckpt",
                         training={"epochs": 1000, "patience": None, "max_seconds": budget})
    report = post.report
    assert report.training.max_seconds == budget and report.compared_flows
    assert report.history.out_of_time and report.history.epochs < 1000
    won, lost = report.candidates[report.chosen], report.candidates[1 - report.chosen]
    assert won.val_loss == min(c.val_loss for c in report.candidates)
    assert won.seconds > 2 * lost.seconds                  # the winner trained on after the race
    spent = sum(c.seconds for c in report.candidates)     # Gaussian starts included
    # each run may overrun by its last step and validation: milliseconds here; the bound is loose for loaded machines
    assert spent < budget + 2.0
    kept_log = Path(won.log_path)
    epochs = [json.loads(line)["epoch"] for line in kept_log.read_text().splitlines()]
    assert epochs == list(range(won.epochs)) == list(range(report.history.epochs))
    assert not list(tmp_path.glob("*.continued.jsonl"))    # folded into the candidate's log
    # what the budget allowed is still a posterior (fit_posterior warns, an error here, if it learned nothing)
    s = post.sample(4000, x[:1], seed=0)[:, 0]
    assert ((s.mean(0) - x[0] @ gain.T).abs() / cov.diagonal().sqrt()).max() < 1.0


def _with_distractors(n: int, noise: int, seed: int = 0):
    """theta ~ N(0, I_2), x = (theta + 0.5 eps, `noise` features of pure noise): posterior N(0.8 x[:2], 0.2 I)."""
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(n, 2, generator=gen)
    x = torch.cat([theta + 0.5 * torch.randn(n, 2, generator=gen), torch.randn(n, noise, generator=gen)], 1)
    return theta, x


def test_auto_summary_races_an_mlp_summary_against_none_on_wide_vectors(tmp_path):
    """62 noise features beside 2 informative ones (at least twice the 16 an MLP summary makes): "auto" trains the
    flow without a summary and with an MLP summary at two learning rates, each with its own batch size, and keeps
    the lowest validation loss."""
    from innverse.amortized import default_training
    from innverse.amortized.fit import MLP_SUMMARY_LR_FACTORS

    theta, x = _with_distractors(2000, 62)
    post = fit_posterior(theta, x, prior=gaussian(0.0, 1.0, dim=2), training={"epochs": 30}, progress=False)
    report = post.report
    assert [c.summary for c in report.candidates] == [None, "MLPSummary", "MLPSummary"]
    flat, mlp = default_training(1800, 2, summary=False), default_training(1800, 2, summary=True)
    assert [c.lr for c in report.candidates] == [flat.lr] + [mlp.lr * f for f in MLP_SUMMARY_LR_FACTORS]
    assert report.chosen == min(range(3), key=lambda i: report.candidates[i].theta_val_loss)
    kept = report.candidates[report.chosen]
    assert (post.estimator.summary is None) == (kept.summary is None)
    assert report.training.batch_size == (flat if kept.summary is None else mlp).batch_size
    assert report.training.lr == kept.lr
    xs = x[:2]
    s = post.sample(4000, xs, seed=0)
    assert ((s.mean(0) - 0.8 * xs[:, :2]).abs() / math.sqrt(0.2)).max() < 0.4
    assert torch.allclose(s.std(0), torch.full((2, 2), math.sqrt(0.2)), rtol=0.25)
    import innverse

    again = innverse.load(innverse.save(post, tmp_path / "wide.safetensors"))
    assert again.report == report and torch.equal(again.sample(10, xs, seed=1), post.sample(10, xs, seed=1))


@pytest.mark.filterwarnings("ignore:fit_posterior. the posterior did not beat:RuntimeWarning")  # 2 epochs
def test_the_summary_race_only_for_auto_on_wide_vectors_with_validation_data():
    theta, x = _with_distractors(300, 62)
    quick = {"training": {"epochs": 2}, "progress": False}
    for kwargs in ({"summary": "identity"}, {"summary": "mlp"}, {"validation_fraction": 0.0},
                   {"flow": {"coupling": "flow_matching", "hidden": [16]}},   # its loss ranks no posteriors
                   {"summary": "auto", "flow": {"blocks": 2}}):
        report = fit_posterior(theta, x, **kwargs, **quick).report
        raced = [c.summary for c in report.candidates]
        assert raced == ([None, "MLPSummary", "MLPSummary"] if kwargs.get("summary") == "auto" else
                         ["MLPSummary"] if kwargs.get("summary") == "mlp" else [None]), kwargs
    # a learning rate the caller gives is kept: the MLP summary then races once
    report = fit_posterior(theta, x, training={"epochs": 2, "lr": 3e-3}, progress=False).report
    assert [(c.summary, c.lr) for c in report.candidates] == [(None, 3e-3), ("MLPSummary", 3e-3)]
    narrow_theta, narrow_x = _with_distractors(300, 29)     # 31 features: below twice the summary's 16
    assert [c.summary for c in fit_posterior(narrow_theta, narrow_x, **quick).report.candidates] == [None]
    with pytest.raises(ValueError, match="summary_options"):   # options for a network "auto" may not build
        fit_posterior(theta, x, summary_options={"hidden": [8]}, **quick)


def test_the_summary_race_still_warns_when_the_data_carry_no_information():
    """64 features of pure noise: whichever candidate wins, the kept posterior is the prior, and fit_posterior says so."""
    gen = torch.Generator().manual_seed(0)
    theta, x = torch.randn(2000, 2, generator=gen), torch.randn(2000, 64, generator=gen)
    with pytest.warns(RuntimeWarning, match="did not beat a Gaussian fit of the prior"):
        post = fit_posterior(theta, x, training={"epochs": 30}, progress=False)
    assert [c.summary for c in post.report.candidates] == [None, "MLPSummary", "MLPSummary"]


@pytest.mark.parametrize(("n", "flow", "half"), [(2_000, {}, 2.0), (31_623, {}, 3.0),
                                                 (31_623, {"support_half_width": 2.5}, 2.5)])
def test_the_support_maps_half_width_follows_the_number_of_simulations_unless_set(n, flow, half, tmp_path):
    """Unset, the box map's half-width comes from the number of pairs (2 up to 10^4, 3 at 10^4.5); a set
    one is kept; the saved posterior names the half-width it was trained with and reads back the same."""
    import innverse
    from innverse.amortized import box_uniform

    gen = torch.Generator().manual_seed(0)
    prior = box_uniform(-torch.ones(2), torch.ones(2))
    theta = 2 * torch.rand(n, 2, generator=gen) - 1
    x = theta + 0.1 * torch.randn(n, 2, generator=gen)
    post = fit_posterior(theta, x, prior, flow={"blocks": 1, "hidden": [8], **flow}, training={"epochs": 1},
                         progress=False)
    assert post.estimator.flow_options.support_half_width == pytest.approx(half, abs=1e-4)
    assert post.estimator.support.half_width == pytest.approx(half, abs=1e-4)
    assert post.report.candidates[post.report.chosen].flow["support_half_width"] == pytest.approx(half, abs=1e-4)
    again = innverse.load(innverse.save(post, tmp_path / "post.safetensors"))
    assert again.estimator.support.half_width == post.estimator.support.half_width
    obs = torch.tensor([[0.95, -0.3]])
    torch.testing.assert_close(again.log_prob(theta[:50], obs.expand(50, 2)), post.log_prob(theta[:50], obs.expand(50, 2)))


def test_default_candidates_take_the_half_width_of_their_simulations_and_online_ones_two():
    from innverse.amortized.candidates import flow_candidates

    big = flow_candidates(None, 8, online=False, validation=True, summary=False, simulations=100_000)
    assert len(big) == 2 and all(f.support_half_width == 4.0 for f in big)   # the spline flow and MAF alike
    online = flow_candidates(None, 8, online=True, validation=False, summary=False, simulations=100_000)
    assert [f.support_half_width for f in online] == [2.0]
    mixed = flow_candidates([{"support_half_width": 1.5}, {}], 8, False, True, False, simulations=100_000)
    assert [f.support_half_width for f in mixed] == [1.5, 4.0]


def test_the_map_term_turns_a_validation_loss_into_thetas_negative_log_density():
    """-log q(theta | x) through the whole flow equals the networks' loss plus the map term, for any map."""
    from innverse.amortized import box_uniform
    from innverse.amortized.candidates import _map_log_det
    from innverse.amortized.sources import InMemory

    gen = torch.Generator().manual_seed(0)
    prior = box_uniform(-torch.ones(2), torch.ones(2))
    theta = 2 * torch.rand(400, 2, generator=gen) - 1
    x = theta + 0.1 * torch.randn(400, 2, generator=gen)
    for options in ({"support_interval": "linear", "support_half_width": 0.5}, {"support_interval": "logit"}):
        est = PosteriorEstimator(2, (2,), prior, None, {"blocks": 1, "hidden": [8], **options})
        source = InMemory(theta, x)
        source.setup(est, 0.25, False, torch.Generator().manual_seed(1))
        est.fit_standardization(source.theta, source.x, "auto")
        data = source.batches(est, 64)
        with torch.no_grad():
            v, z = est.prepare(theta[source.val_idx], x[source.val_idx])
            networks = -est.prepared_log_prob(v, z).double().mean()
            direct = -est.log_prob(theta[source.val_idx], x[source.val_idx]).double().mean()
        assert float(networks + _map_log_det(est, data)) == pytest.approx(float(direct), abs=1e-4)


def test_candidates_with_different_maps_are_chosen_on_thetas_density():
    """The race compares the parameters' own density: the networks' losses of two maps are in different units.

    Pairs piled against a bound (as a proposal of a sequential run may draw them): the logit map's
    networks see an easier target than the linear map's, but the linear map's posterior gives the
    held-out parameters the higher density, and it is kept.
    """
    from innverse.amortized import box_uniform

    gen = torch.Generator().manual_seed(0)
    prior = box_uniform(-torch.ones(2), torch.ones(2))
    theta = 1 - 0.02 * torch.rand(3000, 2, generator=gen)
    x = theta + 0.005 * torch.randn(3000, 2, generator=gen)
    flows = [{"blocks": 2, "hidden": [16], "support_interval": "logit"}, {"blocks": 2, "hidden": [16]}]
    report = fit_posterior(theta, x, prior, flow=flows, training={"epochs": 5}, progress=False).report
    logit, linear = report.candidates
    assert logit.val_loss < linear.val_loss and linear.theta_val_loss < logit.theta_val_loss   # the orders differ
    assert report.chosen == 1


def test_resuming_with_another_half_width_is_refused_and_with_the_same_one_goes_on(tmp_path):
    """The half-width leaves no trace in the weights; resuming a checkpoint under another would train and
    save a flow under a map it never saw (as when a store has grown between the runs)."""
    from innverse.amortized import box_uniform

    gen = torch.Generator().manual_seed(0)
    prior = box_uniform(-torch.ones(2), torch.ones(2))
    theta = 2 * torch.rand(600, 2, generator=gen) - 1
    x = theta + 0.1 * torch.randn(600, 2, generator=gen)
    ckpt = tmp_path / "fit.ckpt"
    opts = {"prior": prior, "training": {"epochs": 2}, "checkpoint": ckpt, "progress": False}
    first = fit_posterior(theta, x, flow={"blocks": 1, "hidden": [8]}, **opts)
    assert json.loads((tmp_path / "fit.ckpt.flow.json").read_text())["support_half_width"] == 2.0
    with pytest.raises(ValueError, match=r"cannot resume .*fit\.ckpt: it was trained with support_half_width=2\.0, "
                                         r"but this fit resolves support_half_width=3\.0 .*pass flow=\{'support_half_width': 2\.0\}"):
        fit_posterior(theta, x, flow={"blocks": 1, "hidden": [8], "support_half_width": 3.0}, resume=True, **opts)
    again = fit_posterior(theta, x, flow={"blocks": 1, "hidden": [8]}, resume=True, **opts)
    assert again.report.history.epochs == first.report.history.epochs   # it finished: nothing left to train


def test_a_half_width_that_no_map_uses_does_not_block_a_resume(tmp_path):
    """Under a Gaussian prior no component is bounded on both sides, so a store grown past 10^4 rows (a new
    half-width) resumes; the check compares only what the map uses."""
    prior, theta, x = _linear_data(600)
    ckpt = tmp_path / "fit.ckpt"
    opts = {"prior": prior, "training": {"epochs": 2}, "checkpoint": ckpt, "progress": False}
    first = fit_posterior(theta, x, flow={"blocks": 1, "hidden": [8]}, **opts)
    again = fit_posterior(theta, x, flow={"blocks": 1, "hidden": [8], "support_half_width": 3.0}, resume=True, **opts)
    assert again.report.history.epochs == first.report.history.epochs
    with pytest.raises(ValueError, match=r"it was trained with blocks=1, but this fit resolves blocks=2"):
        fit_posterior(theta, x, flow={"blocks": 2, "hidden": [8]}, resume=True, **opts)
