"""ArviZ: to_inference_data holds the posterior draws, log q, the observed data and prior draws; az.summary and a
netCDF round trip work without warnings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .model import POSTERIOR_SD, SHRINK

az = pytest.importorskip("arviz", reason="ArviZ is an optional test dependency (pip install arviz)")


def test_inference_data_groups_and_contents(posterior, prior):
    x_obs = torch.tensor([1.0, -0.5])
    idata = posterior.to_inference_data(x_obs, 2000, seed=3, parameter_names=["a", "b"])
    assert set(idata.groups()) == {"posterior", "sample_stats", "observed_data", "prior"}
    theta = idata.posterior["theta"]
    assert theta.dims == ("chain", "draw", "parameter") and theta.shape == (4, 500, 2)
    assert list(idata.posterior["parameter"].values) == ["a", "b"]
    draws = torch.from_numpy(theta.values.reshape(2000, 2))
    # the draws are posterior.sample's (same seed), log_q is their log-density, the observation is stored as given
    torch.testing.assert_close(draws, posterior.sample(2000, x_obs, seed=3).double())
    torch.testing.assert_close(torch.from_numpy(idata.sample_stats["log_q"].values.reshape(-1)),
                               posterior.log_prob(draws.float(), x_obs).double())
    np.testing.assert_array_equal(idata.observed_data["x"].values, x_obs.numpy())
    prior_draws = idata.prior["theta"].values.reshape(-1, 2)
    assert prior_draws.shape == (2000, 2) and abs(prior_draws.std() - 1.0) < 0.05    # N(0, I) prior


def test_summary_and_netcdf_round_trip(posterior, tmp_path):
    x_obs = torch.tensor([0.3, 1.2])
    idata = posterior.to_inference_data(x_obs, 4000)
    summary = az.summary(idata)                      # warnings are errors here: none about chains
    np.testing.assert_allclose(summary["mean"].values, (SHRINK * x_obs).numpy(), atol=0.08)
    np.testing.assert_allclose(summary["sd"].values, POSTERIOR_SD, atol=0.05)
    assert (summary["r_hat"] < 1.02).all()           # independent draws: 1 by construction (see the docs)
    path = tmp_path / "posterior.nc"
    idata.to_netcdf(str(path))
    again = az.from_netcdf(str(path))
    np.testing.assert_array_equal(again.sample_stats["log_q"].values, idata.sample_stats["log_q"].values)
    assert az.summary(again, group="prior").shape[0] == 2


def test_bad_input_is_a_clear_error(posterior):
    with pytest.raises(ValueError, match="expected one observation"):
        posterior.to_inference_data(torch.zeros(3, 2), 100)
    with pytest.raises(ValueError, match=r"n must be a positive multiple of chains=4, got 10"):
        posterior.to_inference_data(torch.zeros(2), 10)
    with pytest.raises(ValueError, match="3 parameter names for 2 parameters"):
        posterior.to_inference_data(torch.zeros(2), 100, parameter_names=["a", "b", "c"])
