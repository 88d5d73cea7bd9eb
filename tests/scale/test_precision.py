"""Mixed precision in the training loop (CPU): the subnetworks compute in bfloat16 or float16, the
log-determinants and the loss stay float32, and a flow trains as far as in float32; float16's
dynamic loss scaling skips overflowing steps without counting them as failures."""

from __future__ import annotations

import pytest
import torch

from innverse.flows import coupling_flow
from innverse.train import TensorBatches, TrainConfig, train


def _data() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    a = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.5, 0.3, 0.4]])
    return torch.randn(512, 3, generator=g) @ a.T


def _fit(precision: str, seen: dict, factor: float = 1.0, max_nonfinite: int = 20) -> tuple[float, float]:
    torch.manual_seed(0)
    flow = coupling_flow(3, blocks=2, hidden=(32, 32), coupling="spline")
    x = _data()
    with torch.no_grad():
        before = float(-flow.log_prob(x).mean())
    linear = next(m for m in flow.modules() if isinstance(m, torch.nn.Linear))
    linear.register_forward_hook(lambda m, i, out: seen.setdefault("matmul", out.dtype) and None)

    def loss(batch, step):
        _, log_det = flow.transform(batch[0])
        seen.setdefault("log_det", log_det.dtype)
        value = -flow.log_prob(batch[0]).mean()
        seen.setdefault("loss", value.dtype)
        return factor * value

    cfg = TrainConfig(epochs=10, batch_size=128, lr=3e-3, patience=None, ema=None, precision=precision,
                      max_nonfinite=max_nonfinite)
    history = train(flow, loss, TensorBatches(x, batch_size=128), config=cfg, progress=False)
    seen["skipped"] = sum(r["skipped"] for r in history.records)
    with torch.no_grad():
        return before, float(-flow.log_prob(x).mean())


def test_bfloat16_trains_with_float32_log_dets_and_loss():
    seen16: dict = {}
    before, after16 = _fit("bfloat16", seen16)
    assert {k: seen16[k] for k in ("matmul", "log_det", "loss")} == {
        "matmul": torch.bfloat16, "log_det": torch.float32, "loss": torch.float32}
    seen32: dict = {}
    _, after32 = _fit("float32", seen32)
    assert seen32["matmul"] == torch.float32
    # the Gaussian's entropy is about 3.2 nats (|det A| = 0.24); both fits get most of the way from the start
    assert after16 < before - 1.0
    assert abs(after16 - after32) < 0.1


def test_float16_trains_with_loss_scaling_and_float32_log_dets_and_loss():
    seen16: dict = {}
    before, after16 = _fit("float16", seen16)
    assert {k: seen16[k] for k in ("matmul", "log_det", "loss")} == {
        "matmul": torch.float16, "log_det": torch.float32, "loss": torch.float32}
    _, after32 = _fit("float32", {})
    assert after16 < before - 1.0
    assert abs(after16 - after32) < 0.1


def test_float16_overflow_halves_the_scale_and_is_not_a_failure():
    # a loss of ~3e3: times the initial scale 2^16 its float16 gradients overflow (max 65504), so the
    # first steps are skipped while the scale halves; far more than max_nonfinite=3 of them, not counted
    seen: dict = {}
    before, after = _fit("float16", seen, factor=1000.0, max_nonfinite=3)
    assert seen["skipped"] > 3
    assert after < before - 0.5                       # it trains (40 steps, the first ones skipped, gradients clipped)
    with pytest.raises(Exception, match="consecutive steps had a non-finite loss"):   # a NaN loss still counts
        _fit("float16", {}, factor=float("nan"), max_nonfinite=3)


def test_loss_scaler_backs_off_grows_and_counts_once_it_reaches_one():
    from innverse.train.precision import LossScaler

    s = LossScaler(True, init=4.0, interval=3)
    assert s.overflowed() and s.scale == 2.0          # 4 -> 2, the scaler's skip
    assert s.overflowed() and s.scale == 1.0          # 2 -> 1, still the scaler's
    assert not s.overflowed()                         # at scale 1 an overflow is a real failure
    s.finite(), s.finite()
    assert s.scale == 0.5
    s.finite()
    assert s.scale == 1.0 and s.good_steps == 0       # doubled after 3 finite steps in a row
    off = LossScaler(False)
    assert off.scale == 1.0 and not off.overflowed() and off.scale == 1.0


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_fit_posterior_with_a_summary_network_trains_under_mixed_precision(precision):
    # the summary network's output comes out of autocast in half precision and conditions the flow
    from innverse.amortized import box_uniform, fit_posterior

    g = torch.Generator().manual_seed(0)
    prior = box_uniform(-1.0, 1.0, dim=2)
    theta = prior.sample((1024,))
    x = theta.repeat(1, 4) + 0.05 * torch.randn(1024, 8, generator=g)
    post = fit_posterior(theta, x, prior=prior, summary="mlp", training={"epochs": 8, "precision": precision},
                         progress=False, seed=0)
    s = post.sample(500, x[0], seed=1)
    assert s.dtype == torch.float32
    assert (s.mean(0) - theta[0]).abs().max() < 0.15          # it learned: the posterior sits near the truth


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")  # compiler
def test_compiled_training_follows_the_eager_run():
    try:                    # torch.compile on CPU needs a working C++ toolchain and Python headers
        torch.compile(lambda t: t.sin() + 1)(torch.ones(3))
    except Exception as err:  # any failure of the toolchain probe: not available here
        pytest.skip(f"torch.compile does not work on this machine: {type(err).__name__}")

    def fit(compile_: bool) -> float:
        torch.manual_seed(0)
        flow = coupling_flow(3, blocks=2, hidden=(16,))
        x = _data()
        cfg = TrainConfig(epochs=2, batch_size=256, lr=1e-3, patience=None, ema=None, compile=compile_)
        history = train(flow, lambda b, step: -flow.log_prob(b[0]).mean(), TensorBatches(x, batch_size=256),
                        config=cfg, progress=False)
        return history.records[-1]["train_loss"]

    assert fit(True) == pytest.approx(fit(False), rel=1e-4)
    with pytest.raises(ValueError, match="compile must be True or False"):
        TrainConfig(compile="yes")
