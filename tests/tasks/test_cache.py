"""Reference-posterior cache: location rules (both families), round trip, atomic files, version keying."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from innverse.tasks import abc_cache_dir, get_task
from innverse.tasks.cache import cache_root, reference_cache_dir, reference_path


def test_cache_location_rules(tmp_path, monkeypatch):
    monkeypatch.delenv("INNVERSE_CACHE", raising=False)
    assert reference_cache_dir() == Path.home() / ".cache" / "innverse" / "references"
    monkeypatch.setenv("INNVERSE_CACHE", str(tmp_path / "root"))
    assert reference_cache_dir() == tmp_path / "root" / "references"
    assert reference_cache_dir(tmp_path / "explicit") == tmp_path / "explicit"


def test_both_families_share_one_cache_root(tmp_path, monkeypatch):
    monkeypatch.delenv("INNVERSE_CACHE", raising=False)
    assert abc_cache_dir() == Path.home() / ".cache" / "innverse" / "abc"
    monkeypatch.setenv("INNVERSE_CACHE", str(tmp_path))
    assert (reference_cache_dir(), abc_cache_dir()) == (tmp_path / "references", tmp_path / "abc")
    assert cache_root("abc", tmp_path / "x") == abc_cache_dir(tmp_path / "x") == tmp_path / "x"


def test_reference_round_trip_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("INNVERSE_CACHE", str(tmp_path))
    task = get_task("gaussian_mixture")
    first = task.reference_posterior(2, n=500)
    path = reference_path(tmp_path / "references", "gaussian_mixture", 2, 500, task.reference_version)
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "temporary files left behind"
    # the second call reads the file: overwrite it with a marker and see the marker come back
    marker = np.full((500, 2), 0.25)
    np.save(path, marker)
    assert torch.equal(task.reference_posterior(2, n=500), torch.full((500, 2), 0.25))
    # results do not depend on the cache: a fresh directory recomputes identical samples
    again = task.reference_posterior(2, n=500, cache_dir=tmp_path / "other")
    assert torch.equal(first, again)
    assert first.dtype == torch.float32
    assert get_task("gaussian_mixture", torch.float64).reference_posterior(2, 500, tmp_path / "o").dtype \
        == torch.float64


def test_corrupt_or_mismatched_cache_is_recomputed(tmp_path):
    task = get_task("gaussian_linear")
    good = task.reference_posterior(1, n=300, cache_dir=tmp_path)
    path = reference_path(tmp_path, "gaussian_linear", 1, 300, task.reference_version)
    path.write_bytes(b"not a numpy file")
    assert torch.equal(task.reference_posterior(1, n=300, cache_dir=tmp_path), good)
    np.save(path, np.zeros((299, 10)))
    assert torch.equal(task.reference_posterior(1, n=300, cache_dir=tmp_path), good)
