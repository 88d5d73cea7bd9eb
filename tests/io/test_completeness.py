"""Nothing is dropped silently: user-defined priors and summary networks save or are refused at save time, naming
them; bare flows save as their constructor call; model files get the permissions the umask allows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.distributions import Distribution, constraints

import innverse
from innverse.amortized import Posterior, PosteriorEstimator, box_uniform
from innverse.blocks import AffineCoupling, LULinear
from innverse.core import Flow, Sequence
from innverse.io import build_flow
from innverse.nets.summaries import register_summary, registered_summaries, summary_from_config


class TiltedPrior(Distribution):
    """A prior defined in user code (innverse cannot describe it): density prop. to exp(-|theta|^2 / 2 + theta_1)."""

    arg_constraints: dict = {}  # noqa: RUF012
    support = constraints.independent(constraints.real, 1)

    def __init__(self) -> None:
        super().__init__(torch.Size(), torch.Size([2]), validate_args=False)

    def sample(self, sample_shape=()):
        return torch.randn(*sample_shape, 2) + torch.tensor([1.0, 0.0])

    def log_prob(self, value):
        return -0.5 * (value - torch.tensor([1.0, 0.0])).square().sum(-1)


class Conv1dSummary(nn.Module):
    """A summary network defined in user code: a 1-D convolution over series (B, T, 1) and a mean over time."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv1d(1, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(x.transpose(1, 2)).mean(-1)

    def config(self) -> dict:
        return {"channels": self.channels}


def _posterior(prior, summary=None, x_shape=(3,)) -> Posterior:
    torch.manual_seed(0)
    est = PosteriorEstimator(2, x_shape, prior, summary, {"blocks": 2, "hidden": [8]}, reference_size=8)
    theta = prior.sample((64,)) if prior is not None else torch.randn(64, 2)
    x = torch.randn(64, *x_shape)
    est.fit_standardization(theta, x)
    with torch.no_grad():
        for p in est.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return Posterior(est)


def test_a_user_defined_prior_is_refused_at_save_time_naming_it(tmp_path: Path):
    post = _posterior(TiltedPrior())
    target = tmp_path / "p.safetensors"
    with pytest.raises(TypeError, match=r"cannot save the prior, a .*TiltedPrior.*omit_prior=True.*prior=your_prior"):
        innverse.save(post, target)
    assert not target.exists()


def test_a_user_defined_prior_left_out_on_purpose_comes_back_with_load(tmp_path: Path):
    post = _posterior(TiltedPrior())
    path = innverse.save(post, tmp_path / "p.safetensors", omit_prior=True)
    with pytest.warns(RuntimeWarning, match=r"saved without its prior \(a TiltedPrior\).*pass prior="):
        bare = innverse.load(path)
    assert bare.prior is None
    again = innverse.load(path, prior=TiltedPrior())
    assert isinstance(again.prior, TiltedPrior)
    x = torch.randn(2, 3)
    assert torch.equal(post.sample(30, x, seed=4), again.sample(30, x, seed=4))
    with pytest.raises(ValueError, match="has no prior"):
        innverse.load(innverse.save(build_flow("coupling_flow", 2, blocks=1), tmp_path / "f.safetensors"),
                      prior=TiltedPrior())


def test_an_unregistered_summary_network_is_refused_then_saves_once_registered(tmp_path: Path):
    class Unregistered(Conv1dSummary):
        pass

    post = _posterior(box_uniform(-1.0, 1.0, dim=2), Unregistered(), x_shape=(6, 1))
    with pytest.raises(TypeError, match=r"summary network .*Unregistered is not registered.*register_summary"):
        innverse.save(post, tmp_path / "u.safetensors")
    assert register_summary("test_conv1d_summary", Conv1dSummary) is Conv1dSummary
    assert register_summary("test_conv1d_summary", Conv1dSummary) is Conv1dSummary    # again: a no-op
    post = _posterior(box_uniform(-1.0, 1.0, dim=2), Conv1dSummary(5), x_shape=(6, 1))
    path = innverse.save(post, tmp_path / "r.safetensors")
    assert innverse.io.info(path)["config"]["estimator"]["summary"] == {"channels": 5, "type": "test_conv1d_summary"}
    again = innverse.load(path)
    assert isinstance(again.estimator.summary, Conv1dSummary) and again.estimator.summary.channels == 5
    x = torch.randn(3, 6, 1)
    assert torch.equal(post.sample(20, x, seed=2), again.sample(20, x, seed=2))
    assert torch.equal(post.log_prob(torch.zeros(3, 2), x), again.log_prob(torch.zeros(3, 2), x))


def test_a_config_that_does_not_describe_the_network_is_refused(tmp_path: Path):
    class Forgetful(Conv1dSummary):
        def config(self) -> dict:
            return {}                                # the channels are missing: rebuilt with 4, not 7

    register_summary("test_forgetful_summary", Forgetful)
    post = _posterior(box_uniform(-1.0, 1.0, dim=2), Forgetful(7), x_shape=(6, 1))
    with pytest.raises(TypeError, match=r"rebuilt from its config.*has other tensors"):
        innverse.save(post, tmp_path / "f.safetensors")


def test_register_summary_errors_and_decorator():
    with pytest.raises(ValueError, match="'deepset' is a built-in summary network"):
        register_summary("deepset", Conv1dSummary)
    with pytest.raises(TypeError, match=r"expected an nn\.Module class"):
        register_summary("test_not_a_module", object)
    with pytest.raises(TypeError, match="needs a config"):
        register_summary("test_no_config", nn.Linear)

    @register_summary("test_decorated_summary")
    class Decorated(Conv1dSummary):
        @classmethod
        def from_config(cls, config: dict) -> Decorated:
            return cls(channels=config["channels"] + 0)

    assert registered_summaries()["test_decorated_summary"] is Decorated
    assert isinstance(summary_from_config({"type": "test_decorated_summary", "channels": 3}), Decorated)
    with pytest.raises(ValueError, match="already registered to"):
        register_summary("test_decorated_summary", Conv1dSummary)


def test_flows_from_the_constructors_save_and_load(tmp_path: Path):
    flow = build_flow("coupling_flow", 3, context_features=2, blocks=2, hidden=(8,), coupling="spline").double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = innverse.save(flow, tmp_path / "flow.safetensors")
    again = innverse.load(path)
    assert isinstance(again, Flow) and again.base.dtype == torch.float64 and not again.training
    x, c = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    assert torch.equal(flow.log_prob(x, c), again.log_prob(x, c))
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(flow.sample(4, c, g1), again.sample(4, c, g2))
    assert innverse.io.info(path)["config"]["recipe"] == {
        "constructor": "coupling_flow",
        "arguments": {"features": 3, "context_features": 2, "blocks": 2, "hidden": [8], "coupling": "spline"}}
    residual = build_flow("residual_flow", 2, blocks=1, hidden=(8,))
    residual.eval()
    again = innverse.load(innverse.save(residual, tmp_path / "res.safetensors"))
    z = torch.randn(4, 2)
    torch.testing.assert_close(residual.log_prob(z), again.log_prob(z))


def test_hand_built_flows_and_undescribable_arguments_are_refused_at_save_time(tmp_path: Path):
    hand_built = Flow(Sequence(AffineCoupling(2), LULinear(2, seed=0)))
    with pytest.raises(TypeError, match=r"this Flow has no recipe.*save_file\(flow.state_dict\(\), path\)"):
        innverse.save(hand_built, tmp_path / "a.safetensors")
    custom = build_flow("coupling_flow", 2, blocks=1, activation=nn.Tanh)
    with pytest.raises(TypeError, match=r"was given argument 'activation' \(a type\)"):
        innverse.save(custom, tmp_path / "b.safetensors")
    with pytest.raises(ValueError, match="unknown flow constructor 'spline_flow'"):
        build_flow("spline_flow", 2)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_model_files_respect_the_umask(tmp_path: Path, umask: int, mode: int):
    post = _posterior(box_uniform(-1.0, 1.0, dim=2))
    old = os.umask(umask)
    try:
        path = innverse.save(post, tmp_path / "p.safetensors")
        flow_path = innverse.save(build_flow("coupling_flow", 2, blocks=1), tmp_path / "f.safetensors")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode and flow_path.stat().st_mode & 0o777 == mode
    assert innverse.load(path).theta_dim == 2
