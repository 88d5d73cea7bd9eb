"""Save / load of trained-looking posteriors: every estimator configuration reproduces its samples.

For each configuration (affine / spline couplings, affine / spline autoregressive blocks, every summary network, bounded, half-bounded
and unbounded priors, one and several parameters), a posterior with perturbed weights and fitted
standardisation is saved and loaded; samples with the same seed and log-densities must be
bit-for-bit identical, and the loaded posterior must carry its prior.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import innverse
from innverse.amortized import FitReport, FlowOptions, Posterior, PosteriorEstimator, build_summary
from innverse.amortized.priors import box_uniform, gaussian, log_normal
from innverse.io import ModelFileError, info
from innverse.train import History, TrainConfig

DATA = Path(__file__).parent / "data"

SMALL_FLOW = {"blocks": 2, "hidden": [16, 16]}
SUMMARY_OPTIONS = {
    None: None,
    "mlp": {"out_features": 4, "hidden": [8]},
    "deepset": {"out_features": 4},
    "set_transformer": {"out_features": 4},
    "time_series": {"out_features": 4},
}
# name: (coupling, summary network, x_shape, prior)
CASES = {
    "affine-box": ("affine", None, (3,), lambda: box_uniform(-1.0, 2.0, dim=2)),
    "spline-box": ("spline", None, (3,), lambda: box_uniform(-1.0, 2.0, dim=2)),
    "spline-gaussian": ("spline", None, (3,), lambda: gaussian(0.0, 2.0, dim=2)),
    "affine-lognormal": ("affine", None, (3,), lambda: log_normal(0.0, 0.5, dim=2)),
    "autoregressive-box": ("autoregressive", None, (3,), lambda: box_uniform(-1.0, 2.0, dim=3)),
    "autoregressive_spline-gaussian": ("autoregressive_spline", None, (4,), lambda: gaussian(0.0, 2.0, dim=3)),
    "spline-one-parameter": ("spline", None, (2,), lambda: box_uniform(0.0, 1.0, dim=1)),
    "affine-unbounded-no-prior": ("affine", None, (3,), lambda: None),
    "spline-mlp": ("spline", "mlp", (2, 3), lambda: box_uniform(-1.0, 1.0, dim=2)),
    "affine-deepset": ("affine", "deepset", (5, 2), lambda: gaussian(0.0, 1.0, dim=2)),
    "spline-set-transformer": ("spline", "set_transformer", (5, 2), lambda: box_uniform(-1.0, 1.0, dim=3)),
    "affine-time-series": ("affine", "time_series", (6, 1), lambda: box_uniform(-1.0, 1.0, dim=2)),
}


def _posterior(coupling: str, summary: str | None, x_shape: tuple[int, ...], prior) -> Posterior:
    torch.manual_seed(0)
    dim = 2 if prior is None else int(prior.event_shape[0])
    net = build_summary(summary, x_shape, dim, SUMMARY_OPTIONS[summary]) if summary else None
    est = PosteriorEstimator(dim, x_shape, prior, net, FlowOptions(coupling=coupling, **SMALL_FLOW),
                             reference_size=32)
    theta = prior.sample((64,)) if prior is not None else torch.randn(64, dim)
    x = torch.randn(64, *x_shape) * 3.0 + 1.0
    est.fit_standardization(theta, x)
    with torch.no_grad():  # weights away from their initial values, like a trained network
        for p in est.parameters():
            p.add_(0.1 * torch.randn_like(p))
    est.set_reference(x[:32])
    report = FitReport(mode="memory", training_pairs=64, dropped_invalid=0,
                       training=TrainConfig(epochs=3, batch_size=32, lr=1e-3), log_features=[],
                       history=History(records=[{"epoch": 0, "train_loss": 1.5, "val_loss": 1.25}], best_epoch=0,
                                       best_val_loss=1.25))
    return Posterior(est, report=report)


@pytest.mark.parametrize("name", list(CASES))
def test_round_trip_reproduces_samples_exactly(tmp_path: Path, name: str) -> None:
    coupling, summary, x_shape, make_prior = CASES[name]
    post = _posterior(coupling, summary, x_shape, make_prior())
    path = innverse.save(post, tmp_path / "posterior.safetensors")
    again = innverse.load(path)
    assert isinstance(again, Posterior) and again.report == post.report     # the training history is kept too
    x = torch.randn(3, *x_shape)
    a, b = post.sample(40, x, seed=11), again.sample(40, x, seed=11)
    assert a.shape == (40, 3, post.theta_dim) and torch.equal(a, b)
    assert torch.equal(post.log_prob(a, x), again.log_prob(b, x))
    assert torch.equal(post.reference_summaries, again.reference_summaries)
    if post.prior is None:
        assert again.prior is None
    else:
        assert type(again.prior) is type(post.prior)
        probe = post.prior.sample((5,))
        assert torch.equal(post.prior.log_prob(probe), again.prior.log_prob(probe))
    assert info(path)["config"]["estimator"]["flow"]["coupling"] == coupling


def test_estimator_alone_round_trips(tmp_path: Path) -> None:
    est = _posterior("spline", "deepset", (5, 2), box_uniform(-1.0, 1.0, dim=2)).estimator
    again = innverse.load(innverse.save(est, tmp_path / "est.safetensors"))
    assert isinstance(again, PosteriorEstimator) and not again.training
    h = torch.randn(2, est.context_features)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(est.sample_given_summaries(7, h, g1), again.sample_given_summaries(7, h, g2))


def test_tampered_posterior_file_is_refused(tmp_path: Path) -> None:
    post = _posterior("affine", None, (3,), box_uniform(-1.0, 2.0, dim=2))
    path = innverse.save(post, tmp_path / "p.safetensors")
    raw = bytearray(path.read_bytes())
    raw[-40] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="integrity check"):
        innverse.load(path)


def test_attached_outlier_detector_round_trips(tmp_path: Path) -> None:
    from innverse.diagnostics import SummaryOutlierDetector

    post = _posterior("affine", None, (3,), box_uniform(-1.0, 2.0, dim=2))
    detector = SummaryOutlierDetector(torch.randn(400, 3), level=0.05, seed=1)
    post.attach_detector(detector)
    again = innverse.load(innverse.save(post, tmp_path / "p.safetensors"))
    assert isinstance(again.detector, SummaryOutlierDetector) and again.detector.level == 0.05
    probe = torch.cat([torch.randn(20, 3), torch.full((2, 3), 25.0)])
    assert torch.equal(detector.score(probe), again.detector.score(probe))
    assert again.detector.flags(probe)[-2:].all()
    with pytest.warns(RuntimeWarning, match="far outside the simulated training data"):
        again.sample(5, torch.full((3,), 1e3))
    post.attach_detector(type("Custom", (), {"flags": lambda self, h: h[:, 0] > 0})())
    with pytest.raises(TypeError, match="cannot save the attached detector Custom"):
        innverse.save(post, tmp_path / "q.safetensors")


def test_log_scale_features_round_trip(tmp_path: Path) -> None:
    post = _posterior("spline", None, (3,), box_uniform(-1.0, 2.0, dim=2))
    est = post.estimator
    x = torch.exp(4.0 * torch.randn(64, 3))                           # positive, many decades
    x[:, 1] = torch.randn(64)
    est.fit_standardization(est.prior.sample((64,)), x)
    assert est.embedding.log_features.tolist() == [True, False, True]
    again = innverse.load(innverse.save(post, tmp_path / "log.safetensors"))
    assert torch.equal(again.estimator.embedding.log_features, est.embedding.log_features)
    assert torch.equal(post.sample(20, x[:2], seed=1), again.sample(20, x[:2], seed=1))


@pytest.mark.parametrize("kind", ["vector", "sets"])
def test_files_written_by_innverse_0_1_load_and_give_the_same_densities_and_samples(kind: str) -> None:
    """Model files of format version 1 (``data/make_v1_files.py`` run with innverse 0.1.0) still load."""
    import json

    expected = json.loads((DATA / "expected_v1.json").read_text())[kind]
    post = innverse.load(DATA / f"posterior_v1_{kind}.safetensors")
    assert info(DATA / f"posterior_v1_{kind}.safetensors")["config"]["estimator"]["version"] == 1
    theta, x = torch.tensor(expected["theta"]), torch.tensor(expected["x"])
    lp = post.log_prob(theta[:, None].expand(5, 2, 2), x)
    torch.testing.assert_close(lp, torch.tensor(expected["log_prob"]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(post.sample(4, x, seed=3), torch.tensor(expected["samples_seed3"]), rtol=1e-5, atol=1e-5)
    assert post.report.mode == "memory" and post.report.training.epochs == 3 - (kind == "sets")
