"""Inverse-problem tasks against independent ground truth: geometry, physics, exact posteriors."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.integrate import solve_ivp

from innverse.tasks import Ballistics, EightModes, InverseKinematics


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- inverse kinematics -------------------------------------------------------------------------
def test_kinematics_straight_arm_and_right_angles():
    task = InverseKinematics()
    x = torch.tensor([[0.0, 0.0, 0.0, 0.0],                 # straight along the x axis
                      [0.3, math.pi / 2, 0.0, 0.0],         # straight up from height 0.3
                      [-0.2, 0.0, math.pi / 2, -math.pi / 2]], dtype=torch.float64)
    y = task.simulate(x)
    expected = torch.tensor([[2.0, 0.0], [0.0, 2.3], [1.5, 0.3]], dtype=torch.float64)
    torch.testing.assert_close(y, expected, atol=1e-12, rtol=0)


def test_kinematics_segments_keep_their_lengths():
    task = InverseKinematics()
    x = task.sample_prior(1000, _gen(0))
    joints = task.joints(x)
    lengths = (joints[:, 1:] - joints[:, :-1]).norm(dim=-1)
    torch.testing.assert_close(lengths, torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64).expand(1000, 3))
    torch.testing.assert_close(joints[:, 0, 1], x[:, 0])


def test_kinematics_prior_moments():
    x = InverseKinematics().sample_prior(200_000, _gen(1))
    std = x.std(0)
    torch.testing.assert_close(std, torch.tensor([0.25, 0.5, 0.5, 0.5], dtype=torch.float64), rtol=0.01, atol=0)
    assert x.mean(0).abs().max() < 0.005
    for j in range(4):
        assert stats.kstest(x[:5000, j].numpy() / float(std[j]), "norm").pvalue > 0.01


# -- ballistics -----------------------------------------------------------------------------------
def _impact_by_ode(task: Ballistics, x: np.ndarray) -> float:
    """Integrate m v' = -k v - m g e_2 numerically and stop at the descending ground crossing."""
    a, g = task.drag / task.mass, task.gravity

    def rhs(t, s):
        return [s[2], s[3], -a * s[2], -a * s[3] - g]

    def ground(t, s):
        return s[1]

    ground.terminal, ground.direction = True, -1
    v = [x[3] * math.cos(x[2]), x[3] * math.sin(x[2])]
    sol = solve_ivp(rhs, (0, 50), [x[0], x[1], *v], events=ground, rtol=1e-11, atol=1e-12)
    return float(sol.y_events[0][0][0])


def test_ballistics_matches_ode_integration():
    task = Ballistics()
    x = task.sample_prior(6, _gen(2))
    y = task.simulate(x)[:, 0]
    for i in range(6):
        assert abs(float(y[i]) - _impact_by_ode(task, x[i].numpy())) < 1e-6


def test_ballistics_without_drag_is_the_parabola():
    task = Ballistics(drag=1e-7)
    x = torch.tensor([[0.5, 1.2, 0.7, 12.0], [-1.0, 0.0, 1.1, 8.0]], dtype=torch.float64)
    v1, v2 = x[:, 3] * torch.cos(x[:, 2]), x[:, 3] * torch.sin(x[:, 2])
    t = (v2 + torch.sqrt(v2**2 + 2 * 9.81 * x[:, 1])) / 9.81
    torch.testing.assert_close(task.simulate(x)[:, 0], x[:, 0] + v1 * t, rtol=1e-5, atol=1e-5)


def test_ballistics_prior_is_the_published_one_after_rounding():
    task = Ballistics()
    x = task.sample_prior(100_000, _gen(3))
    speed = torch.round(x[:, 3]).long()
    counts = torch.bincount(speed, minlength=40)[5:26].double()
    expected = torch.tensor(stats.poisson.pmf(np.arange(5, 26), 15.0)) * x.shape[0]
    assert stats.chisquare(counts.numpy(), expected.numpy() * counts.sum().item() / expected.sum().item()).pvalue > 1e-3
    assert x[:, 1].min() >= 0
    assert math.radians(9) <= float(x[:, 2].min()) and float(x[:, 2].max()) <= math.radians(81)
    assert Ballistics(dequantize=False).sample_prior(100, _gen(4))[:, 3].frac().abs().max() == 0


def test_ballistics_below_ground_without_reaching_it_is_nan():
    task = Ballistics()
    x = torch.tensor([[0.0, -5.0, 0.2, 1.0]], dtype=torch.float64)
    assert torch.isnan(task.simulate(x)).all()


# -- 8 modes ----------------------------------------------------------------------------------------
def test_eight_modes_geometry_and_labels():
    task = EightModes("some")
    assert task.y_dim == 4
    d = torch.cdist(task.centers, task.centers) + 10 * torch.eye(8, dtype=torch.float64)
    torch.testing.assert_close(d.min(1).values, torch.full((8,), 2.0, dtype=torch.float64))
    assert [task.modes_of(c).shape[0] for c in range(4)] == [4, 2, 1, 1]
    x, y = task.sample_joint(20_000, _gen(5))
    assert (task.simulate(x) == y).all()                       # modes are 10 sigma apart
    torch.testing.assert_close(y.mean(0), torch.tensor([0.5, 0.25, 0.125, 0.125], dtype=torch.float64),
                               atol=0.01, rtol=0)


def test_eight_modes_reference_posterior_is_the_conditional_of_the_joint():
    task = EightModes("some")
    x, y = task.sample_joint(40_000, _gen(6))
    post = task.reference_posterior(torch.eye(4, dtype=torch.float64), 5000, _gen(7))
    assert post.shape == (5000, 4, 2)
    grid = task.reference_posterior(torch.eye(4, dtype=torch.float64).reshape(2, 2, 4), 10, _gen(7))
    assert grid.shape == (10, 2, 2, 2)                         # (n, *batch, x_dim)
    for c in range(4):
        joint_c = x[task.colour_of(y) == c]
        # Same modes, same weights, same spread: compare per-mode fractions and moments.
        for s in (joint_c, post[:, c]):
            assert torch.cdist(s, task.centers).argmin(1).unique().numel() == [4, 2, 1, 1][c]
        torch.testing.assert_close(post[:, c].mean(0), joint_c.mean(0), atol=0.08, rtol=0)
        torch.testing.assert_close(post[:, c].std(0), joint_c.std(0), atol=0.06, rtol=0)


def test_eight_modes_log_prob_normalised_and_matches_samples():
    task = EightModes("some")
    y = torch.tensor([[0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    # Integrate exp(log p) on a grid: the posterior is normalised.
    g = torch.linspace(-4, 4, 401, dtype=torch.float64)
    grid = torch.cartesian_prod(g, g)
    dens = task.reference_log_prob(grid, y.expand(grid.shape[0], 4)).exp()
    assert abs(float(dens.sum() * (g[1] - g[0]) ** 2) - 1.0) < 1e-3
    # The entropy of the 2-mode posterior is log 2 + log(2 pi e sigma^2).
    s = task.reference_posterior(y[0], 20_000, _gen(8))
    h = -task.reference_log_prob(s, y.expand(20_000, 4)).mean()
    assert abs(float(h) - (math.log(2) + math.log(2 * math.pi * math.e * 0.04))) < 0.03


# -- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", [InverseKinematics(), Ballistics(), EightModes()])
def test_wrong_parameter_shape_is_a_clear_error(task):
    with pytest.raises(ValueError, match=rf"x must have shape \(n, {task.x_dim}\)"):
        task.simulate(torch.zeros(3, task.x_dim + 1, dtype=torch.float64))
    with pytest.raises(TypeError, match="real numbers"):
        task.simulate(torch.zeros(3, task.x_dim, dtype=torch.bool))
    # integers, arrays and lists are converted to float64 like everywhere else in the library
    x = task.sample_prior(3, _gen(0))
    torch.testing.assert_close(task.simulate(x.numpy()), task.simulate(x), equal_nan=True)
    assert task.simulate(x.tolist()).dtype == torch.float64
    with pytest.raises(ValueError, match="positive int"):
        task.sample_prior(0)


def test_bad_task_configuration():
    with pytest.raises(ValueError, match="labels"):
        EightModes((0, 0, 0, 0, 2, 2, 2, 2))                 # colour 1 unused
    with pytest.raises(ValueError, match="segment lengths"):
        InverseKinematics(lengths=(0.5, 1.0))
    with pytest.raises(ValueError, match="drag"):
        Ballistics(drag=-1.0)
    with pytest.raises(ValueError, match=r"y_obs as \(4,\) \(one\) or \(k, 4\)"):
        EightModes().reference_posterior(torch.ones(3, dtype=torch.float64), 10)
    with pytest.raises(ValueError, match="no observation"):
        EightModes().reference_posterior(torch.ones(0, 4, dtype=torch.float64), 10)
