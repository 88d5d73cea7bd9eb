"""Atomic writes: the previous file survives a failed write, and new files get the mode the umask says."""

from __future__ import annotations

import os
import stat

import pytest

from innverse._files import atomic_write, atomic_write_bytes


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = atomic_write_bytes(tmp_path / "f.bin", b"abc")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode and path.read_bytes() == b"abc"


def test_a_failed_write_leaves_the_previous_file(tmp_path):
    path = atomic_write_bytes(tmp_path / "f.bin", b"old")

    def fail(handle):
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]
