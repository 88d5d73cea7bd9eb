"""The diagnostics battery end to end: verdicts, JSON, plots, batching, simulators and bad input."""

import json

import numpy as np
import pytest
import torch

from innverse.diagnostics import CheckResult, check

from .gaussian_linear import GaussianLinear

N, S = 150, 300


@pytest.fixture(scope="module")
def model():
    return GaussianLinear(dims=2, obs=3)


def test_exact_posterior_passes_and_result_is_json(model):
    post = model.posterior()
    res = check(post, model.prior, model.simulator, n=N, samples=S, seed=0, parameter_names=["a", "b"])
    assert isinstance(res, CheckResult)
    for section in ("sbc", "coverage", "tarp", "recovery", "learning"):
        assert res[section]["passed"], section
    assert res["learning"]["status"] == ["learned", "learned"] and "learning" in res.summary()
    assert res.passed and res["coverage"]["hpd"]["available"]
    assert post.sample_calls == 1  # all data sets in one batched call
    d = json.loads(res.to_json())
    assert d["sbc"]["passed"] is True and len(d["sbc"]["ranks"]) == N
    assert d["simulation"] == {"requested": N, "used": N, "dropped_nonfinite": 0}
    assert "SBC" in res.summary() and "PASSED" in res.summary()


def test_overconfident_and_biased_posteriors_fail(model):
    over = check(model.posterior(scale=0.6), model.prior, model.simulator, n=N, samples=S)
    assert not over["sbc"]["passed"] and not over["coverage"]["passed"] and not over.passed
    assert over["coverage"]["hpd"]["mean_deviation"][0] < -0.1
    biased = check(model.posterior(bias=0.6), model.prior, model.simulator, n=N, samples=S)
    assert not biased["recovery"]["passed"] and min(biased["recovery"]["mean_z"]) > 0.5


def test_seed_makes_the_run_reproducible_without_touching_global_rng(model):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = check(model.posterior(), model.prior, model.simulator, n=50, samples=100, seed=7)
    after = torch.rand(1)
    b = check(model.posterior(), model.prior, model.simulator, n=50, samples=100, seed=7)
    assert torch.equal(before, after)
    assert a.to_dict()["sbc"] == b.to_dict()["sbc"]


def test_plots_and_json_written_to_out_dir(model, tmp_path):
    pytest.importorskip("matplotlib")
    torch.manual_seed(0)
    obs = model.simulator(model.prior.sample((2,)))
    history = [{"train_loss": 2.0 / (i + 1), "val_loss": 2.1 / (i + 1)} for i in range(10)]
    res = check(model.posterior(), model.prior, model.simulator, n=100, samples=200, out_dir=tmp_path,
                observations=obs, history=history,
                reference_samples=[model.posterior().sample(500, o) for o in obs])
    expected = {"sbc_rank_histogram", "sbc_ecdf", "coverage", "recovery", "zscore_contraction", "training_loss",
                "pair_plot_observation_0", "pair_plot_observation_1"}
    assert set(res["plots"]) == expected
    for path in res["plots"].values():
        assert (tmp_path / path.split("/")[-1]).stat().st_size > 5000
    saved = json.loads((tmp_path / "diagnostics.json").read_text())
    assert saved["sbc"]["passed"] == res["sbc"]["passed"] and saved["plots"] == res["plots"]


class _SamplerOnly:
    """A peer's posterior without log_prob, returning numpy arrays."""

    def __init__(self, post):
        self.post = post

    def sample(self, n, x):
        return self.post.sample(n, x).numpy()


def test_posterior_without_log_prob_and_numpy_simulator(model):
    def simulator(theta):
        x = model.simulator(theta).numpy()
        x[::10] = np.nan  # every tenth simulation fails
        return x

    res = check(_SamplerOnly(model.posterior()), model.prior, simulator, n=N, samples=S)
    assert res["simulation"]["dropped_nonfinite"] == N // 10
    assert res["simulation"]["used"] == N - N // 10
    assert res["coverage"]["hpd"]["available"] is False
    assert res["sbc"]["passed"] and res["tarp"]["passed"]


def test_misspecified_observations_are_flagged(model):
    torch.manual_seed(3)
    good = model.simulator(model.prior.sample((5,)))
    shifted = good + 4.0
    ok = check(model.posterior(), model.prior, model.simulator, n=400, samples=100, observations=good)
    assert ok["misspecification"]["available"] and ok["misspecification"]["passed"]
    bad = check(model.posterior(), model.prior, model.simulator, n=400, samples=100, observations=shifted)
    m = bad["misspecification"]
    assert all(m["flags"]) and m["set_test"]["flagged"] and not m["passed"] and not bad.passed


class _BlindSummaries:
    """The exact posterior with a summary network that ignores the last coordinate of the data."""

    def __init__(self, post):
        self.post = post

    def sample(self, n, x):
        return self.post.sample(n, x)

    def log_prob(self, theta, x):
        return self.post.log_prob(theta, x)

    def summaries(self, x):
        return torch.as_tensor(x)[:, :2]


def test_a_drift_the_summaries_cannot_see_is_caught_in_the_data(model):
    torch.manual_seed(4)
    good = model.simulator(model.prior.sample((40,)))
    drifted = good.clone()
    drifted[:, 2] += 1.0                         # a sensor drift in the coordinate the summaries ignore
    post = _BlindSummaries(model.posterior())
    ok = check(post, model.prior, model.simulator, n=100, samples=50, observations=good)["misspecification"]
    assert ok["passed"] and ok["data_test"]["available"] and not ok["data_test"]["flagged"]
    bad = check(post, model.prior, model.simulator, n=100, samples=50, observations=drifted)["misspecification"]
    assert not bad["set_test"]["flagged"]         # the summaries look like the simulations' ...
    assert bad["data_test"]["p_value"] < 0.01 and not bad["passed"]   # ... the data do not
    plain = check(model.posterior(), model.prior, model.simulator, n=100, samples=50, observations=drifted)
    assert "data_test" not in plain["misspecification"]   # no summary network: the summaries are the data


def test_bad_input(model):
    post = model.posterior()
    with pytest.raises(TypeError, match=r"torch\.distributions\.Distribution"):
        check(post, "uniform", model.simulator)
    with pytest.raises(ValueError, match="n must be an integer >= 10"):
        check(post, model.prior, model.simulator, n=5)
    with pytest.raises(ValueError, match="returned shape"):
        check(post, model.prior, lambda t: torch.zeros(3, 3), n=20)

    class Wrong:
        def sample(self, n, x):
            return torch.zeros(n, 2)

    with pytest.raises(ValueError, match=r"expected \(100, 20, 2\)"):
        check(Wrong(), model.prior, model.simulator, n=20, samples=100)
    with pytest.raises(ValueError, match="only 0 of 20 simulations"):
        check(post, model.prior, lambda t: torch.full((t.shape[0], 3), float("nan")), n=20)
    with pytest.raises(ValueError, match=r"observations must have shape \(k, \*\(3,\)\)"):
        check(post, model.prior, model.simulator, n=20, samples=50, observations=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="too few data sets"):
        check(post, model.prior, model.simulator, n=20, samples=50, bins=10)


def test_a_conditional_flow_is_a_posterior(model):
    from innverse.flows import coupling_flow

    # Untrained (zero-initialised couplings): the flow is N(0, I) whatever x, i.e. exactly the prior.
    # The prior is a calibrated posterior, so calibration passes, but it has learned nothing:
    # contraction and R² are zero. The diagnostics must tell both apart.
    flow = coupling_flow(2, context_features=3, blocks=2, hidden=(16,))
    res = check(flow, model.prior, model.simulator, n=100, samples=200)
    assert res["coverage"]["hpd"]["available"] and res["settings"]["has_log_prob"]
    assert res["sbc"]["passed"] and res["coverage"]["passed"]
    assert max(abs(c) for c in res["recovery"]["mean_contraction"]) < 0.1
    assert max(res["recovery"]["r2"]) < 0.1
    # ... and the learning check fails it: the data predict θ, the posterior mean does not
    assert res["learning"]["status"] == ["FAILED", "FAILED"] and not res.passed
    assert abs(res["learning"]["log_prob_gain"]) < 0.2 and "FAILED" in res.summary()
