"""The generated design and misspecification tasks: the task protocol, and the properties they are built to have."""

from __future__ import annotations

import json
import math

import pytest
import torch

from innverse.tasks import AbstractTask
from innverse.tasks.design import (
    BAND_SETS,
    AbstractMisspecifiedTask,
    MultispectralCamera,
    PendulumFriction,
    SIRReportingDelay,
    WindkesselDrift,
    WindkesselWaveform,
    windkessel_signals,
)

TASKS = [MultispectralCamera(3), MultispectralCamera(8), MultispectralCamera(27), WindkesselWaveform("pressure"),
         WindkesselWaveform("ppg"), WindkesselWaveform("both"), PendulumFriction(), SIRReportingDelay(),
         WindkesselDrift()]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("task", TASKS, ids=lambda t: repr(t)[:40])
def test_every_task_follows_the_protocol(task):
    assert isinstance(task, AbstractTask) and len(task.parameter_names) == task.parameter_dim
    json.dumps(task.config())
    theta, x = task.sample_joint(6, gen(1))
    assert theta.shape == (6, task.parameter_dim) and x.shape == (6, *task.observation_shape)
    assert theta.dtype == x.dtype == torch.float32 and torch.isfinite(x).all()
    assert (theta >= task.low.float()).all() and (theta <= task.high.float()).all()
    assert torch.equal(x, task.sample_joint(6, gen(1))[1])                  # reproducible from the generator
    assert task.simulate(theta.double(), gen(2)).dtype == torch.float64      # follows the parameters' dtype
    with pytest.raises(ValueError, match=rf"must have shape \(n, {task.parameter_dim}\)"):
        task.simulate(torch.zeros(3, task.parameter_dim + 1))
    if isinstance(task, AbstractMisspecifiedTask):
        th, real = task.sample_real(6, gen(3))
        assert real.shape == (6, *task.observation_shape) and torch.isfinite(real).all()
        assert not torch.allclose(real, task.simulate(th, gen(3)), atol=1e-3)   # reality is not the model


def test_camera_water_is_invisible_through_the_visible_bands_only():
    theta = MultispectralCamera(dtype=torch.float64).sample_prior(20, gen(0))
    wetter = theta.clone()
    wetter[:, 3] = 0.9
    theta[:, 3] = 0.5
    for bands, visible in ((3, True), (8, False), (27, False)):
        cam = MultispectralCamera(bands, dtype=torch.float64)
        a, b = cam.simulate(theta, gen(4)), cam.simulate(wetter, gen(4))    # same noise
        if visible:
            assert torch.allclose(a, b, rtol=1e-12)
        else:
            assert (a[:, -2] - b[:, -2]).abs().min() > 0.01 * a[:, -2].min()   # the 970-nm band sees water


def test_camera_band_sets_are_nested():
    assert set(BAND_SETS[3]) <= set(BAND_SETS[8]) <= set(BAND_SETS[27])


def _euler_pressure_and_ppg(r: float, c: float, hr: float, td: float, dt: float = 1 / 5120):
    """Brute-force forward Euler of the windkessel and the PPG low-pass, after 20 s of settling."""
    period = 60 / hr
    systole = 0.37 * math.sqrt(period)
    peak = math.pi * 70 / (2 * systole)
    p = r * 70 / period
    u = c * p
    start = round(math.floor(20 / period) * period / dt)
    pressure, volume = [], []
    for i in range(start + round(2 / dt) + 1):
        phase = (i * dt) % period
        if i >= start and (i - start) % round(1 / 32 / dt) == 0 and len(pressure) < 64:
            pressure.append(p)
            volume.append(u)
        q = peak * math.sin(math.pi * phase / systole) if phase < systole else 0.0
        p, u = p + dt * (q - p / r) / c, u + dt * (c * p - u) / td
    v = torch.tensor(volume, dtype=torch.float64)
    return torch.tensor(pressure, dtype=torch.float64), (v - v.mean()) / v.std()


def test_windkessel_closed_form_matches_a_brute_force_ode_solution():
    theta = torch.tensor([[0.8, 1.1, 72.0, 0.15]], dtype=torch.float64)
    pressure, ppg = windkessel_signals(*theta.unbind(1))
    p_ref, ppg_ref = _euler_pressure_and_ppg(*theta[0].tolist())
    assert (pressure[0] - p_ref).abs().max() < 0.06          # mmHg: Euler's O(dt) error
    assert (ppg[0] - ppg_ref).abs().max() < 0.006
    assert torch.allclose(pressure.mean(1), theta[:, 0] * 70 * theta[:, 2] / 60, rtol=0.02)   # mean = R SV / T


def test_ppg_sees_resistance_and_compliance_only_through_their_product():
    base = torch.tensor([[1.0, 1.2, 70.0, 0.2]], dtype=torch.float64)
    scaled = base.clone()
    scaled[0, 0], scaled[0, 1] = 1.25, 1.2 / 1.25                     # same R C
    p1, ppg1 = windkessel_signals(*base.unbind(1))
    p2, ppg2 = windkessel_signals(*scaled.unbind(1))
    assert torch.allclose(ppg1, ppg2, atol=1e-9)
    assert (p1 - p2).abs().max() > 5.0
    other = base.clone()
    other[0, 3] = 0.05                                                # microvascular time: PPG only
    p3, ppg3 = windkessel_signals(*other.unbind(1))
    assert torch.equal(p1, p3) and (ppg1 - ppg3).abs().max() > 0.1


def test_bad_task_arguments_raise():
    with pytest.raises(ValueError, match="bands must be one of"):
        MultispectralCamera(5)
    with pytest.raises(ValueError, match=r"\[450, 1000\]"):
        MultispectralCamera([400.0])
    with pytest.raises(ValueError, match="modality must be one of"):
        WindkesselWaveform("ecg")
    with pytest.raises(ValueError, match="dtype"):
        PendulumFriction(dtype=torch.int64)
