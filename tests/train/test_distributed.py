"""Data-parallel training with torchrun (2 CPU processes, gloo): same weights as one process, kill and resume."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

TORCHRUN = Path(sys.executable).with_name("torchrun")

SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    import torch
    import torch.distributed as dist
    from torch import nn
    from innverse.train import TensorBatches, TrainConfig, leave_group, train

    torch.set_num_threads(1)
    out = sys.argv[1]
    if "RANK" in os.environ:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=gen)
    y = torch.sin(x).sum(1, keepdim=True) + 0.1 * torch.randn(200, 1, generator=gen)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
    kill_at = int(os.environ.get("KILL_AT_STEP", "0"))
    steps = [0]

    def loss(batch, step):
        steps[0] += 1
        if rank == 1 and steps[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        step.log(abs_error=(model(batch[0]) - batch[1]).abs().mean())
        return (model(batch[0]) - batch[1]).square().mean()

    cfg = TrainConfig(epochs=6, batch_size=50, lr=1e-2, patience=None, ema=0.9, seed=3)
    hist = train(model, loss, TensorBatches(x[:160], y[:160], batch_size=50), TensorBatches(x[160:], y[160:]), cfg,
                 checkpoint=out + "/ckpt.pt", resume=True, log_path=out + "/log.jsonl", progress=False)
    if rank == 0:
        torch.save(model.state_dict(), out + "/final.pt")
        with open(out + "/records.txt", "w") as f:
            f.write(repr([(r["train_loss"], r["val_loss"], r["abs_error"]) for r in hist.records]))
    if rank == 1:   # arrives late: the first process must not leave before it
        time.sleep(float(os.environ.get("LEAVE_DELAY", "0")))
        open(out + "/arrived.txt", "w").write(repr(time.time()))
    leave_group()
    if rank == 0:
        open(out + "/left.txt", "w").write(repr(time.time()))
""")

pytestmark = pytest.mark.skipif(not TORCHRUN.exists() or not torch.distributed.is_available(),
                                reason="torchrun / torch.distributed not available")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(script: Path, out: Path, nproc: int, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    out.mkdir(exist_ok=True)
    base = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **(env or {})}
    if nproc == 1:
        cmd = [sys.executable, str(script), str(out)]
    else:
        cmd = [str(TORCHRUN), "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
               "--master_port", str(_free_port()), str(script), str(out)]
    return subprocess.run(cmd, env=base, capture_output=True, text=True, timeout=300)


def _why(proc: subprocess.CompletedProcess) -> str:
    """The processes' own messages (they come first) and the launcher's summary (it comes last)."""
    err = proc.stderr
    return err if len(err) <= 5000 else err[:3000] + "\n[...]\n" + err[-2000:]


def _state(out: Path) -> dict:
    return torch.load(out / "final.pt", weights_only=True)


def test_two_processes_give_the_weights_of_one_with_the_same_global_batch(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    one = _run(script, tmp_path / "one", 1)
    assert one.returncode == 0, _why(one)
    two = _run(script, tmp_path / "two", 2, {"LEAVE_DELAY": "0.5"})
    assert two.returncode == 0, _why(two)
    for k, v in _state(tmp_path / "one").items():
        torch.testing.assert_close(_state(tmp_path / "two")[k], v, rtol=1e-5, atol=1e-6)
    rec_one = eval((tmp_path / "one" / "records.txt").read_text())
    rec_two = eval((tmp_path / "two" / "records.txt").read_text())
    assert len(rec_one) == len(rec_two) == 6
    for a, b in zip(rec_one, rec_two):   # losses and logged terms are of the global batches
        assert a == pytest.approx(b, rel=1e-5)
    # the first process left the group only after the late one had arrived
    arrived = float((tmp_path / "two" / "arrived.txt").read_text())
    assert float((tmp_path / "two" / "left.txt").read_text()) >= arrived
    # only rank 0 writes the log
    assert len((tmp_path / "two" / "log.jsonl").read_text().splitlines()) == 6


def test_a_killed_rank_resumes_with_another_world_size(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    ref = _run(script, tmp_path / "ref", 1)
    assert ref.returncode == 0, _why(ref)
    killed = _run(script, tmp_path / "run", 2, {"KILL_AT_STEP": "11"})      # rank 1 dies in epoch 3 (4 steps/epoch)
    assert killed.returncode != 0
    assert not (tmp_path / "run" / "final.pt").exists() and (tmp_path / "run" / "ckpt.pt").exists()
    resumed = _run(script, tmp_path / "run", 1)                             # continued by one process
    assert resumed.returncode == 0, _why(resumed)
    for k, v in _state(tmp_path / "ref").items():
        torch.testing.assert_close(_state(tmp_path / "run")[k], v, rtol=1e-5, atol=1e-6)
    shutil.rmtree(tmp_path / "run")
