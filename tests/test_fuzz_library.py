"""Property-based fuzzing of the library's public entry points with generated bad input.

Every call either succeeds or raises one of the documented error types (``ValueError``,
``TypeError``) with a message that names the function; never an ``IndexError``, ``RuntimeError``
from deep inside torch, or a silently wrong shape. ``INNVERSE_FUZZ=long`` runs the long profile
(many more generated cases) for a dedicated CI step or benchmark; the default profile is fast.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is a test dependency (pip install hypothesis)")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from innverse.amortized import box_uniform, fit_posterior  # noqa: E402
from innverse.diagnostics import c2st  # noqa: E402
from innverse.flows import coupling_flow  # noqa: E402

# "long": 400 cases per entry point, the same every run (the CI step); "explore": 400 fresh random ones
LONG = os.environ.get("INNVERSE_FUZZ") in ("long", "explore")
EXPLORE = os.environ.get("INNVERSE_FUZZ") == "explore"
PROFILE = settings(max_examples=400 if LONG else 20, deadline=None, derandomize=not EXPLORE,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DOCUMENTED = (ValueError, TypeError)

VALUES = st.sampled_from([0.0, 1.0, -1.0, 1e30, -1e30, 1e-30, float("nan"), float("inf"), float("-inf"), 3.5])
DTYPES = st.sampled_from(["float32", "float64", "int64", "bool", "complex64", "object"])


@st.composite
def arrays(draw, max_dims: int = 3, max_side: int = 6):
    """Arrays of any small shape and dtype, with special values sprinkled in."""
    shape = tuple(draw(st.lists(st.integers(0, max_side), min_size=0, max_size=max_dims)))
    dtype = draw(DTYPES)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = rng.normal(size=shape)
    if values.size and draw(st.booleans()):
        values.flat[draw(st.integers(0, values.size - 1))] = draw(VALUES)
    if dtype == "object":
        return np.full(shape, "a", dtype=object)
    if dtype == "bool":
        return values > 0
    with np.errstate(invalid="ignore", over="ignore"):
        return values.astype(dtype)


def _named(err: Exception, *names: str) -> None:
    assert any(n in str(err) for n in names), f"the message does not name the function: {err}"


@PROFILE
@given(theta=arrays(), x=arrays(), epochs=st.integers(-1, 2), validation=st.sampled_from([-0.1, 0.0, 0.5, 0.99, 1.0]),
       summary=st.sampled_from(["auto", "identity", "resnet", None]), batch=st.sampled_from([None, 0, 1, 7]))
def test_fit_posterior_on_generated_input(theta, x, epochs, validation, summary, batch):
    training = {"epochs": epochs} if batch is None else {"epochs": epochs, "batch_size": batch}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # a posterior that learned nothing is reported, not an error
        try:
            post = fit_posterior(theta, x, flow={"blocks": 1, "hidden": [4]}, training=training, summary=summary,
                                 validation_fraction=validation, progress=False)
        except DOCUMENTED as err:
            _named(err, "fit_posterior", "TrainConfig", "FlowOptions", "PosteriorEstimator", "summary")
            return
    # it trained: then the data were valid, and the posterior answers in the contract's shapes
    assert post.sample(3, x[0]).shape == (3, post.theta_dim)


@pytest.fixture(scope="module")
def posterior():
    gen = torch.Generator().manual_seed(0)
    prior = box_uniform(-1.0, 1.0, dim=2)
    theta = torch.rand(200, 2, generator=gen) * 2 - 1
    x = torch.cat([theta, theta.sum(1, keepdim=True)], 1)
    return fit_posterior(theta, x, prior=prior, flow={"blocks": 1, "hidden": [4]}, training={"epochs": 1},
                         progress=False)


@PROFILE
@given(n=st.one_of(st.integers(-2, 4), st.floats(allow_nan=True), st.just("3"), st.just(None)), x=arrays())
@example(n=1, x=np.zeros((0, 3), dtype=np.float32))    # an empty batch of observations (found by the long profile)
def test_posterior_sample_on_generated_input(posterior, n, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)    # observations far outside the simulations
        try:
            s = posterior.sample(n, x)
        except DOCUMENTED as err:
            _named(err, "Posterior.sample")
            return
    assert s.shape[0] == n and s.shape[-1] == 2 and s.shape[1:-1] == tuple(np.asarray(x).shape[:-1])


@PROFILE
@given(theta=arrays(), x=arrays(), outside=st.sampled_from(["error", "-inf", "ignore"]))
def test_posterior_log_prob_on_generated_input(posterior, theta, x, outside):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            lp = posterior.log_prob(theta, x, outside=outside)
        except DOCUMENTED as err:
            _named(err, "Posterior.log_prob")
            return
    assert lp.shape == tuple(np.asarray(theta).shape[:-1])


@PROFILE
@given(features=st.integers(-1, 5), context=st.integers(-1, 3), blocks=st.integers(-1, 2),
       coupling=st.sampled_from(["affine", "spline", "gin", "additive", "autoregressive", "nope"]),
       permutation=st.sampled_from(["random", "lu", "none", "nope"]), x=arrays(), c=arrays())
def test_coupling_flow_and_flow_calls_on_generated_input(features, context, blocks, coupling, permutation, x, c):
    try:
        flow = coupling_flow(features, context, blocks=blocks, hidden=(4,), coupling=coupling, permutation=permutation)
    except DOCUMENTED as err:
        _named(err, "coupling_flow", "Coupling", "MaskedAutoregressive", "features", "context")
        return
    xt = torch.as_tensor(x) if x.dtype != object else x
    ct = torch.as_tensor(c) if c.dtype != object else c
    for call in (lambda: flow.log_prob(xt, ct if context else None), lambda: flow.sample(2, ct if context else None)):
        try:
            out = call()
        except DOCUMENTED as err:
            _named(err, "Flow", "Coupling", "MaskedAutoregressive", "Sequence", "RandomPermutation", "LULinear")
            continue
        assert torch.is_tensor(out)


@PROFILE
@given(a=arrays(max_dims=2, max_side=30), b=arrays(max_dims=2, max_side=30), folds=st.integers(-1, 4))
def test_c2st_on_generated_input(a, b, folds):
    try:
        value = c2st(a, b, folds=folds)
    except DOCUMENTED as err:
        _named(err, "c2st")
        return
    assert 0.0 <= value <= 1.0


class _FuzzPosterior:
    """A posterior whose samples have a generated shape and values (the protocol a user's object may break)."""

    def __init__(self, shape_kind: str, value: float) -> None:
        self.shape_kind, self.value = shape_kind, value

    def sample(self, n: int, x: torch.Tensor) -> torch.Tensor:
        k = x.shape[0]
        shape = {"ok": (n, k, 2), "flat": (n, 2), "wrong_d": (n, k, 3), "wrong_k": (n, k + 1, 2)}[self.shape_kind]
        out = torch.randn(shape)
        out[0] = self.value
        return out


@PROFILE
@given(n=st.sampled_from([-1, 5, 12, 30]), samples=st.sampled_from([1, 3, 20]),
       level=st.sampled_from([-0.1, 0.05, 0.05, 0.2, 1.0]),
       shape_kind=st.sampled_from(["ok", "flat", "wrong_d", "wrong_k"]), value=VALUES,
       sim_value=VALUES, observations=st.one_of(st.none(), arrays(max_dims=2, max_side=4)))
def test_check_on_generated_input(n, samples, level, shape_kind, value, sim_value, observations):
    from innverse.diagnostics import check

    prior = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(2), torch.ones(2)), 1)

    def simulator(theta: torch.Tensor) -> torch.Tensor:
        x = theta + 0.1 * torch.randn_like(theta)
        x[::3, 0] = sim_value
        return x

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = check(_FuzzPosterior(shape_kind, value), prior, simulator, n=n, samples=samples, level=level,
                        observations=observations, reference_simulations=50)
    except DOCUMENTED as err:
        _named(err, "check", "recovery", "sbc", "learning_test", "coverage", "posterior", "misspecification")
        return
    assert isinstance(res.passed, bool) and res.settings["n"] == n
