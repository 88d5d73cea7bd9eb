"""Training loop: schedules, early stopping, non-finite losses, logging, checkpoints and kill-and-resume."""

from __future__ import annotations

import fractions
import itertools
import json
import math
import signal
import textwrap
import time

import pytest
import torch
from torch import nn

from innverse.train import (
    NonFiniteLossError,
    TensorBatches,
    TrainConfig,
    learning_rate,
    load_checkpoint,
    save_checkpoint,
    train,
)

from ..helpers import run_python


def _regression(n: int = 256, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=gen)
    return x, y


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))


def _mse(model):
    return lambda batch, step=None: (model(batch[0]) - batch[1]).square().mean()


def test_schedules():
    assert learning_rate(0, 100, 1.0, "constant") == 1.0
    lrs = [learning_rate(s, 100, 1.0, "cosine", warmup=0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:])) and lrs[-1] < 0.01
    assert learning_rate(55, 100, 1.0, "cosine", warmup=0.1) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    one = [learning_rate(s, 100, 1.0, "onecycle") for s in range(100)]
    assert one[0] == pytest.approx(1 / 25 + (1 - 1 / 25) / 30) and max(one) == pytest.approx(1.0)
    assert one.index(max(one)) in (29, 30) and one[-1] < 0.01
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="step")


def test_training_reduces_loss_and_restores_the_best_epoch(tmp_path):
    x, y = _regression()
    model = _model()
    log = tmp_path / "log.jsonl"
    hist = train(model, _mse(model), TensorBatches(x[:200], y[:200], batch_size=32), TensorBatches(x[200:], y[200:]),
                 TrainConfig(epochs=15, lr=1e-2, patience=None, ema=None), log_path=log, progress=False)
    assert hist.epochs == 15 and not hist.stopped_early
    val = hist.column("val_loss")
    assert val[-1] < 0.2 * val[0]
    best = min(range(15), key=lambda i: val[i])
    assert hist.best_epoch == best
    with torch.no_grad():
        assert (model(x[200:]) - y[200:]).square().mean().item() == pytest.approx(val[best], rel=1e-5)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in lines] == list(range(15))
    assert set(lines[0]) == {"epoch", "train_loss", "val_loss", "lr", "seconds", "skipped", "best"}


def test_early_stopping_on_a_validation_loss_that_stops_improving():
    x, y = _regression(64)
    noise = torch.randn(64, 1, generator=torch.Generator().manual_seed(5)) * 3  # unlearnable validation targets
    model = _model()
    hist = train(model, _mse(model), TensorBatches(x, y, batch_size=16), TensorBatches(x, noise),
                 TrainConfig(epochs=200, lr=1e-2, patience=4, min_patience=None, ema=None), progress=False)
    assert hist.stopped_early and hist.epochs < 200
    assert hist.epochs == hist.best_epoch + 1 + 4


def _scripted_validation(best_epoch: int):
    """A model trained on a real loss whose validation loss falls until ``best_epoch``, then rises."""
    x, y = _regression(64)
    model = _model()
    evaluations = itertools.count()

    def loss(batch, step):
        if step.training:
            return (model(batch[0]) - batch[1]).square().mean()
        epoch = next(evaluations)
        return torch.tensor(float(abs(epoch - best_epoch)))

    return model, loss, TensorBatches(x, y, batch_size=32), TensorBatches(x[:8], y[:8], batch_size=8)


@pytest.mark.parametrize("best_epoch, waited", [(2, 5), (11, 12), (30, 20)])
def test_min_patience_waits_as_long_as_the_best_took_within_the_bounds(best_epoch, waited):
    model, loss, data, val = _scripted_validation(best_epoch)
    cfg = TrainConfig(epochs=200, patience=20, min_patience=5)
    hist = train(model, loss, data, val, cfg, progress=False)
    assert hist.stopped_early and hist.best_epoch == best_epoch
    assert hist.epochs == best_epoch + 1 + waited
    # fixed patience (min_patience=None) waits the full 20 epochs whatever the best epoch
    model, loss, data, val = _scripted_validation(best_epoch)
    fixed = TrainConfig(epochs=200, patience=20, min_patience=None)
    assert train(model, loss, data, val, fixed, progress=False).epochs == best_epoch + 21


def test_min_patience_bounds():
    cfg = TrainConfig(patience=8, min_patience=3)
    assert [cfg.patience_after(b) for b in (None, 0, 1, 2, 5, 7, 50)] == [8, 3, 3, 3, 6, 8, 8]
    assert TrainConfig(patience=None, min_patience=3).patience_after(10) is None
    assert TrainConfig(patience=8, min_patience=None).patience_after(0) == 8
    # the two options are independent: setting the patience keeps the adaptive default floor
    assert TrainConfig(patience=40).patience_after(0) == 10
    with pytest.raises(ValueError, match="min_patience"):
        TrainConfig(min_patience=0)


def test_callback_can_stop_training():
    x, y = _regression(64)
    model = _model()
    seen = []
    hist = train(model, _mse(model), TensorBatches(x, y, batch_size=16), None, TrainConfig(epochs=50),
                 callbacks=[lambda r: seen.append(r["epoch"]) or r["epoch"] == 2], progress=False)
    assert hist.epochs == 3 and seen == [0, 1, 2]


def test_non_finite_steps_are_skipped_and_counted():
    x, y = _regression(64)
    model = _model()
    calls = {"n": 0}

    def loss(batch, step):
        calls["n"] += 1
        value = _mse(model)(batch)
        return value * float("nan") if calls["n"] % 3 == 0 else value

    hist = train(model, loss, TensorBatches(x, y, batch_size=16), None, TrainConfig(epochs=3), progress=False)
    assert hist.skipped_steps == 4  # 12 steps, every third skipped
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_persistent_non_finite_loss_aborts_with_a_clear_message():
    x, y = _regression(64)
    model = _model()
    with pytest.raises(NonFiniteLossError, match="consecutive steps had a non-finite loss"):
        train(model, lambda b, s: _mse(model)(b) + float("inf"), TensorBatches(x, y, batch_size=8), None,
              TrainConfig(epochs=5, max_nonfinite=5), progress=False)


def test_weight_average_matches_a_replayed_moving_average():
    """``ema``: validation and the returned weights use the Polyak average of the iterates, with warm-up."""
    x, y = _regression()
    decay, steps = 0.9, []

    def run(ema):
        model = _model()
        mse = _mse(model)
        seen = []

        def loss(batch, step):  # a training step starts from the iterate after the previous step
            if step.training:
                seen.append([p.detach().clone() for p in model.parameters()])
            return mse(batch)

        hist = train(model, loss, TensorBatches(x[:192], y[:192], batch_size=32), TensorBatches(x[192:], y[192:]),
                     TrainConfig(epochs=3, lr=3e-2, patience=None, ema=ema, restore_best=ema is not None),
                     progress=False)
        return model, hist, seen

    plain, _, _ = run(None)
    averaged, hist, seen = run(decay)
    # replay: the loss of the next step sees the iterate after each step; the last iterate is the plain model's
    iterates = [*seen[1:], [p.detach() for p in plain.parameters()]]
    avg = [p.clone() for p in seen[0]]
    for t, w in enumerate(iterates, start=1):
        d = min(decay, (1 + t) / (10 + t))
        avg = [d * a + (1 - d) * p for a, p in zip(avg, w)]
        steps.append(t)
    assert len(steps) == 18 and hist.best_epoch == 2   # 6 steps per epoch; the average keeps improving here
    for a, p in zip(avg, averaged.parameters()):
        assert torch.allclose(a, p, atol=1e-6)
    assert not all(torch.allclose(p, q) for p, q in zip(plain.parameters(), averaged.parameters()))
    with pytest.raises(ValueError, match="ema"):
        TrainConfig(ema=1.0)


def test_checkpoint_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "x", "obj": fractions.Fraction(1, 3)}, path)  # any non-allowlisted object
    with pytest.raises(ValueError, match="not a valid checkpoint"):
        load_checkpoint(path)
    save_checkpoint(tmp_path / "ok.pt", {"format": "x", "t": torch.ones(2)})
    assert torch.equal(load_checkpoint(tmp_path / "ok.pt")["t"], torch.ones(2))
    assert not list(tmp_path.glob(".*tmp"))


SCRIPT = textwrap.dedent("""
    import os, signal, sys, torch
    from torch import nn
    from innverse.train import TensorBatches, TrainConfig, train
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 3, generator=gen)
    y = torch.sin(x).sum(1, keepdim=True) + 0.1 * torch.randn(300, 1, generator=gen)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 32), nn.Dropout(0.1), nn.Tanh(), nn.Linear(32, 1))
    kill_at = int(os.environ.get("KILL_AT_STEP", "0"))
    steps = [0]
    def loss(batch, step):
        steps[0] += 1
        if steps[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        # noise from the loop's generator: a resumed run must draw the same noise
        noisy = batch[0] + 0.05 * torch.randn(batch[0].shape, generator=step.generator)
        return (model(noisy) - batch[1]).square().mean()
    ema = float(os.environ.get("EMA", "0")) or None
    cfg = TrainConfig(epochs=8, lr=3e-3, weight_decay=1e-3, patience=3, seed=4, ema=ema)
    hist = train(model, loss, TensorBatches(x[:240], y[:240], batch_size=32), TensorBatches(x[240:], y[240:]), cfg,
                 checkpoint=sys.argv[1] + "/ckpt.pt", resume=True, log_path=sys.argv[1] + "/log.jsonl", progress=False)
    torch.save(model.state_dict(), sys.argv[1] + "/final.pt")
    print("epochs", hist.epochs)
""")


@pytest.mark.parametrize("ema", ["0", "0.9"])
def test_killed_training_resumes_to_the_same_weights(tmp_path, ema):
    full, part = tmp_path / "full", tmp_path / "part"
    full.mkdir()
    part.mkdir()
    code = SCRIPT.replace("sys.argv[1]", "DIR").replace("import os,", "DIR = os.environ['RUN_DIR']\nimport os,")
    code = "import os\nDIR = os.environ['RUN_DIR']\n" + SCRIPT.replace("sys.argv[1]", "DIR")
    ref = run_python(code, env={"RUN_DIR": str(full), "EMA": ema})
    assert ref.returncode == 0, ref.stderr
    killed = run_python(code, env={"RUN_DIR": str(part), "KILL_AT_STEP": "20", "EMA": ema})  # mid-epoch 3 (8 steps/epoch)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert load_checkpoint(part / "ckpt.pt")["epoch"] == 2
    resumed = run_python(code, env={"RUN_DIR": str(part), "EMA": ema})
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == ref.stdout
    a = torch.load(full / "final.pt", weights_only=True)
    b = torch.load(part / "final.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line)["epoch"] for line in (part / "log.jsonl").read_text().splitlines()]
    assert log == list(range(len(log)))
    assert (full / "log.jsonl").read_text().count("\\n") == (part / "log.jsonl").read_text().count("\\n")


def test_the_loss_sees_progress_and_its_logged_terms_are_recorded():
    x, y = _regression(64)
    model = _model()
    seen = []

    def loss(batch, step):
        value = (model(batch[0]) - batch[1]).square().mean()
        seen.append((step.training, step.progress, step.index))
        if step.training:
            step.log(half=value / 2, rows=batch[0].shape[0])
        return value

    hist = train(model, loss, TensorBatches(x, y, batch_size=16), TensorBatches(x[:16], y[:16]),
                 TrainConfig(epochs=3, lr=1e-2, ema=None), progress=False)
    training = [s for s in seen if s[0]]
    assert [s[2] for s in training] == list(range(12))
    assert [s[1] for s in training] == [i / 12 for i in range(12)]
    assert all(s[1] == 1.0 for s in seen if not s[0])      # validation: progress 1, not training
    for record in hist.records:
        assert record["half"] == pytest.approx(record["train_loss"] / 2, rel=1e-6) and record["rows"] == 16
    assert hist.final("half") == hist.records[-1]["half"]
    with pytest.raises(ValueError, match="epoch record uses itself"):
        train(model, lambda b, s: s.log(epoch=1.0) or _mse(model)(b), TensorBatches(x, y), None,
              TrainConfig(epochs=1, lr=1e-3), progress=False)


def test_an_injected_optimizer_trains_only_its_parameters_and_a_scheduler_replaces_the_schedule():
    x, y = _regression(64)
    model = _model()
    first = [p.detach().clone() for p in model[0].parameters()]
    opt = torch.optim.SGD(model[2].parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
    hist = train(model, _mse(model), TensorBatches(x, y, batch_size=16), None,
                 TrainConfig(epochs=3, lr=1.0, ema=0.9, restore_best=False), optimizer=opt, scheduler=sched,
                 progress=False)
    assert all(torch.equal(a, b) for a, b in zip(first, model[0].parameters()))   # not in the optimiser
    assert hist.column("lr") == [0.05, 0.025, 0.0125]                             # StepLR, not the cosine at lr=1
    assert hist.records[-1]["train_loss"] < hist.records[0]["train_loss"]


def test_an_unresolved_config_gets_the_budget_aware_defaults():
    x, y = _regression(64)
    model = _model()
    hist = train(model, _mse(model), TensorBatches(x, y, batch_size=16), None, TrainConfig(epochs=2), progress=False)
    assert hist.records[0]["lr"] > 0 and hist.epochs == 2


class _SlowMSE:
    """The regression loss, each step at least ``pause`` seconds long (a sleep): a lower bound on the time per step."""

    def __init__(self, model, pause: float) -> None:
        self.model, self.pause, self.steps = model, pause, 0

    def __call__(self, batch, step):
        if step.training:
            time.sleep(self.pause)
            self.steps += 1
        return (self.model(batch[0]) - batch[1]).square().mean()


def test_a_time_budget_ends_the_run_validated_and_with_the_learning_rate_decayed(tmp_path):
    x, y = _regression()
    model = _model()
    loss = _SlowMSE(model, pause=0.01)
    cfg = TrainConfig(epochs=1000, batch_size=64, lr=1e-2, patience=None, ema=None, max_seconds=0.3)
    history = train(model, loss, TensorBatches(x, y, batch_size=64), TensorBatches(x, y, batch_size=256), cfg,
                    checkpoint=tmp_path / "ck.pt", progress=False)
    # every step sleeps 10 ms, so a 0.3 s budget allows at most 30 steps (plus the one that crosses it)
    assert history.out_of_time and not history.stopped_early
    assert 1 <= loss.steps <= 31 and history.epochs <= 8
    assert history.final("val_loss") is not None          # the cut epoch was validated
    assert history.final("lr") < 0.05 * cfg.lr             # the cosine schedule ran on the time fraction
    # a resumed run counts the time already spent: nothing is left to train
    resumed = train(_model(), loss, TensorBatches(x, y, batch_size=64), TensorBatches(x, y, batch_size=256), cfg,
                    checkpoint=tmp_path / "ck.pt", resume=True, progress=False)
    assert loss.steps <= 31 and resumed.epochs == history.epochs and resumed.out_of_time


def test_a_time_budget_counts_the_set_up_of_the_run(monkeypatch):
    """Building the optimiser is part of the budget: the first one in a process imports for over a second."""
    import innverse.train.trainer as trainer

    real = trainer.adam

    def slow_adam(params, cfg):
        time.sleep(0.5)
        return real(params, cfg)

    monkeypatch.setattr(trainer, "adam", slow_adam)
    x, y = _regression()
    model = _model()
    loss = _SlowMSE(model, pause=0.0)
    cfg = TrainConfig(epochs=1000, batch_size=64, lr=1e-2, patience=None, ema=None, max_seconds=0.4)
    history = train(model, loss, TensorBatches(x, y, batch_size=64), TensorBatches(x, y, batch_size=256), cfg,
                    progress=False)
    # the set-up spent the whole budget: one step (the one that finds it spent), one validated epoch
    assert history.out_of_time and loss.steps == 1 and history.epochs == 1


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, True, "10"])
def test_a_bad_time_budget_is_refused(bad):
    with pytest.raises(ValueError, match=r"max_seconds must be a finite number > 0"):
        TrainConfig(max_seconds=bad)
