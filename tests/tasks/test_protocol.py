"""The one task protocol (:class:`AbstractTask`), checked on every task of both families."""

from __future__ import annotations

import json

import pytest
import torch

from innverse.tasks import (
    TASKS,
    AbstractInverseTask,
    AbstractSBITask,
    AbstractTask,
    Ballistics,
    EightModes,
    InverseKinematics,
    get_task,
)

N = 5
INVERSE = {"ballistics": Ballistics, "eight_modes": EightModes, "inverse_kinematics": InverseKinematics}


def _task(name: str) -> AbstractTask:
    return INVERSE[name]() if name in INVERSE else get_task(name)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", [*TASKS, *INVERSE])
def test_every_task_follows_the_protocol(name):
    task = _task(name)
    assert isinstance(task, AbstractTask) and task.name == name
    assert len(task.parameter_names) == task.parameter_dim
    json.dumps(task.config())
    theta = task.sample_prior(N, _gen(1))
    assert theta.shape == (N, task.parameter_dim)
    assert torch.equal(theta, task.sample_prior(N, _gen(1)))
    params, obs = task.sample_joint(N, _gen(1))
    assert torch.equal(params, theta)                          # prior draws first, from the same generator
    assert obs.shape == (N, *task.observation_shape)
    again = task.sample_joint(N, _gen(1))[1]
    assert torch.equal(obs.nan_to_num(), again.nan_to_num())
    assert task.simulate(params, _gen(2)).shape == (N, *task.observation_shape)
    with pytest.raises(ValueError, match="positive int"):
        task.sample_joint(0, _gen(0))
    with pytest.raises(ValueError, match=rf"must have shape \(n, {task.parameter_dim}\)"):
        task.simulate(torch.zeros(N, task.parameter_dim + 1))


@pytest.mark.parametrize("name", [*TASKS, *INVERSE])
def test_each_family_keeps_its_literatures_names(name):
    task = _task(name)
    if isinstance(task, AbstractSBITask):      # theta -> x
        assert (task.theta_dim, task.x_shape) == (task.parameter_dim, task.observation_shape)
    else:                                      # x -> y
        assert isinstance(task, AbstractInverseTask)
        assert (task.x_dim, (task.y_dim,)) == (task.parameter_dim, task.observation_shape)


def test_the_protocol_is_abstract():
    with pytest.raises(TypeError, match="abstract"):
        AbstractTask()
    with pytest.raises(TypeError, match="abstract"):
        AbstractInverseTask()
