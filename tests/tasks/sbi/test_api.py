"""The SBI task API, checked for every registered task: shapes, dtypes, determinism, errors."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import biject_to

from innverse.tasks import SBI_TASKS, TASKS, AbstractSBITask, AbstractTask, get_task

N = 7


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_registry_lists():
    assert set(SBI_TASKS) <= set(TASKS)
    assert len(set(TASKS)) == len(TASKS)
    with pytest.raises(ValueError, match="unknown task"):
        get_task("no_such_task")
    with pytest.raises(TypeError, match="dtype"):
        get_task(TASKS[0], dtype=torch.int64)


@pytest.mark.parametrize("name", TASKS)
def test_attributes_and_prior(name):
    task = get_task(name)
    assert isinstance(task, AbstractSBITask) and isinstance(task, AbstractTask) and task.name == name
    assert len(task.parameter_names) == task.theta_dim
    assert task.num_observations == 10 == len(task.observation_seeds)
    assert task.prior.event_shape == (task.theta_dim,)
    theta = task.prior.sample((N,))
    assert theta.shape == (N, task.theta_dim) and theta.dtype == torch.float32
    assert task.prior.log_prob(theta).shape == (N,)
    assert bool(task.prior.support.check(theta).all())
    # the support admits a bijection from R^D (what a bounded-prior estimator relies on)
    z = torch.randn(N, task.theta_dim, generator=_gen())
    assert bool(task.prior.support.check(biject_to(task.prior.support)(z)).all())
    drawn = task.sample_prior(N, _gen(3))
    assert torch.equal(drawn, task.sample_prior(N, _gen(3)))
    assert bool(task.prior.support.check(drawn).all())


@pytest.mark.parametrize("name", TASKS)
def test_simulate_shapes_dtypes_determinism(name):
    task = get_task(name)
    theta = task.sample_prior(N, _gen(1))
    x = task.simulate(theta, _gen(2))
    assert x.shape == (N, *task.x_shape) and x.dtype == torch.float32
    assert torch.equal(x.isnan(), task(theta, _gen(2)).isnan())
    assert torch.equal(x.nan_to_num(), task(theta, _gen(2)).nan_to_num())
    assert not torch.equal(x.nan_to_num(), task.simulate(theta, _gen(5)).nan_to_num())
    x64 = task.simulate(theta.double(), _gen(2))
    assert x64.dtype == torch.float64
    ll = task.log_likelihood(theta, x)
    assert ll.shape == (N,) and ll.dtype == torch.float32 and bool(torch.isfinite(ll).all())
    ll64 = task.log_likelihood(theta.double(), x64)
    assert ll64.dtype == torch.float64 and bool(torch.isfinite(ll64).all())
    single = task.log_likelihood(theta, task.observation(0))
    assert single.shape == (N,)


@pytest.mark.parametrize("name", TASKS)
def test_observations_are_fixed_and_float64_works(name):
    a, b = get_task(name), get_task(name, dtype=torch.float64)
    assert b.prior.sample((2,)).dtype == torch.float64
    for i in (0, 9):
        assert a.observation(i).shape == a.x_shape and a.observation(i).dtype == torch.float32
        assert b.observation(i).dtype == torch.float64
        assert torch.allclose(a.observation(i).double().nan_to_num(), b.observation(i).nan_to_num(),
                              rtol=1e-6, atol=1e-6)
        assert torch.equal(a.true_parameters(i), get_task(name).true_parameters(i))
        assert bool(a.prior.support.check(a.true_parameters(i)))
        assert bool(torch.isfinite(a.log_joint(a.true_parameters(i)[None], a.observation(i))).all())
    assert not torch.equal(a.true_parameters(0), a.true_parameters(1))


@pytest.mark.parametrize("name", TASKS)
def test_bad_input_is_rejected(name):
    task = get_task(name)
    theta = task.sample_prior(3, _gen())
    with pytest.raises(ValueError, match=r"theta must have shape"):
        task.simulate(theta[0])
    with pytest.raises(ValueError, match=r"theta must have shape"):
        task.simulate(torch.zeros(3, task.theta_dim + 1))
    with pytest.raises(TypeError, match=r"float32 or float64"):
        task.simulate(theta.half())
    with pytest.raises(TypeError, match=r"real numbers"):
        task.simulate(theta > 0)
    with pytest.raises(TypeError, match="generator"):
        task.simulate(theta, generator=0)
    with pytest.raises(ValueError, match="observation index"):
        task.observation(10)
    with pytest.raises(ValueError, match="observation index"):
        task.true_parameters(-1)
    with pytest.raises(ValueError, match="x must have shape"):
        task.log_likelihood(theta, torch.zeros(3, 1234))
    with pytest.raises(ValueError, match="x must have shape"):
        task.log_likelihood(theta, torch.zeros(2, *task.x_shape))
    with pytest.raises(ValueError, match="n must be a positive int"):
        task.reference_posterior(0, n=0)


def test_log_joint_is_minus_inf_off_support():
    task = get_task("two_moons")
    theta = torch.tensor([[0.2, 0.1], [1.5, 0.0]])
    lj = task.log_joint(theta, task.observation(0))
    assert torch.isfinite(lj[0]) and lj[1] == -torch.inf


def test_arrays_and_integers_are_converted_like_everywhere_else():
    task = get_task("gaussian_linear")
    theta = task.sample_prior(4, _gen(1))
    assert torch.equal(task.simulate(theta.numpy(), _gen(2)), task.simulate(theta, _gen(2)))
    assert task.simulate(torch.zeros(4, 10, dtype=torch.long), _gen(2)).dtype == torch.get_default_dtype()
    assert torch.equal(task.log_likelihood(theta, task.observation(0).tolist()),
                       task.log_likelihood(theta, task.observation(0)))
