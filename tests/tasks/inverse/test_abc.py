"""Rejection-ABC reference: exact on a linear-Gaussian problem, chunking, disk cache."""

import os

import pytest
import torch

from innverse.tasks import AbstractInverseTask, InverseKinematics, abc_cache_dir, abc_reference
from innverse.tasks.inverse import rejection_abc as abc_module


class SumOfTwo(AbstractInverseTask):
    """x ~ N(0, I_2), y = x_1 + x_2: p(x | y) = N((y/2, y/2), [[1/2, -1/2], [-1/2, 1/2]])."""

    name, x_dim, y_dim = "sum_of_two", 2, 1

    def sample_prior(self, n, generator=None):
        return torch.randn(n, 2, generator=generator, dtype=torch.float64)

    def simulate(self, x):
        return self.check_x(x).sum(1, keepdim=True)

    def config(self):
        return {}


def test_abc_recovers_the_analytic_posterior(tmp_path):
    task = SumOfTwo()
    targets = torch.tensor([[-1.0], [0.3], [2.0]], dtype=torch.float64)
    ref = abc_reference(task, targets, n_keep=2000, n_simulations=400_000, chunk_size=50_000,
                        cache_path=tmp_path)
    assert ref.samples.shape == (2000, 3, 2) and ref.distances.shape == (2000, 3)
    assert (ref.distances[1:] >= ref.distances[:-1]).all()           # sorted, nearest first
    sim = task.simulate(ref.samples.reshape(-1, 2)).reshape(2000, 3)
    assert ((sim - targets.T).abs() / ref.scale <= ref.epsilon + 1e-12).all()
    for j, y in enumerate(targets[:, 0].tolist()):
        s = ref.samples[:, j]
        torch.testing.assert_close(s.mean(0), torch.tensor([y / 2, y / 2], dtype=torch.float64),
                                   atol=0.05, rtol=0)
        cov = torch.cov(s.T)
        torch.testing.assert_close(cov[0, 0], torch.tensor(0.5, dtype=torch.float64), atol=0.05, rtol=0)
        assert float(torch.corrcoef(s.T)[0, 1]) < -0.97               # x_1 + x_2 nearly fixed


def test_abc_result_does_not_depend_on_memory_chunking_of_targets(tmp_path):
    # Many targets shrink the chunk; a subset of targets with the same chunk gives the same draws.
    task = InverseKinematics()
    targets = task.sample_joint(4, torch.Generator().manual_seed(0))[1]
    a = abc_reference(task, targets, n_keep=50, n_simulations=20_000, chunk_size=5000, cache=False)
    b = abc_reference(task, targets[2:], n_keep=50, n_simulations=20_000, chunk_size=5000, cache=False)
    torch.testing.assert_close(a.samples[:, 2:], b.samples)
    assert a.n_failed == 0 and a.acceptance_rate == 50 / 20_000


def test_abc_cache_is_reused_and_written_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("INNVERSE_CACHE", str(tmp_path))
    assert abc_cache_dir() == tmp_path / "abc"
    task = SumOfTwo()
    first = abc_reference(task, torch.tensor([0.5], dtype=torch.float64), n_keep=20, n_simulations=2000,
                          chunk_size=1000)
    files = list((tmp_path / "abc").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"              # no temporary left behind

    def fail(*args, **kwargs):
        raise AssertionError("cache miss")

    monkeypatch.setattr(abc_module, "_run", fail)
    again = abc_reference(task, torch.tensor([0.5], dtype=torch.float64), n_keep=20, n_simulations=2000,
                          chunk_size=1000)
    torch.testing.assert_close(first.samples, again.samples)
    with pytest.raises(AssertionError, match="cache miss"):           # other seed: other key
        abc_reference(task, torch.tensor([0.5], dtype=torch.float64), n_keep=20, n_simulations=2000,
                      chunk_size=1000, seed=1)


def test_corrupt_cache_file_is_recomputed(tmp_path):
    task = SumOfTwo()
    kw = dict(n_keep=10, n_simulations=1000, chunk_size=500, cache_path=tmp_path)
    first = abc_reference(task, torch.tensor([0.0], dtype=torch.float64), **kw)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"not an npz file")
    again = abc_reference(task, torch.tensor([0.0], dtype=torch.float64), **kw)
    torch.testing.assert_close(first.samples, again.samples)
    assert os.path.getsize(path) > 100


def test_abc_bad_input():
    task = SumOfTwo()
    with pytest.raises(ValueError, match=r"y_obs as \(1,\) \(one\) or \(k, 1\)"):
        abc_reference(task, torch.zeros(2, 3, dtype=torch.float64), cache=False)
    with pytest.raises(ValueError, match="n_simulations"):
        abc_reference(task, torch.zeros(1, dtype=torch.float64), n_keep=100, n_simulations=150,
                      chunk_size=100, cache=False)
    with pytest.raises(TypeError, match="AbstractInverseTask"):
        abc_reference(object(), torch.zeros(1), cache=False)
