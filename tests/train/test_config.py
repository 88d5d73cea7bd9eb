"""TrainConfig: one set of defaults, resolved from the training-set size in one place."""

from __future__ import annotations

import pytest

from innverse.train import TrainConfig


@pytest.mark.parametrize("rows, per, cap, batch", [
    (900, 4, 512, 256), (900, 8, 512, 128), (9000, 4, 512, 512), (9000, 8, 512, 512),
    (900, 16, 256, 64), (90_000, 16, 256, 256), (20, 4, 512, 32), (1, 8, 512, 32)])
def test_batch_size_is_the_power_of_two_nearest_rows_per_batch(rows, per, cap, batch):
    assert TrainConfig().resolve(rows, per, cap).batch_size == batch


def test_learning_rate_and_epochs_follow_the_batch():
    assert TrainConfig().resolve(900, 4).lr == 1e-3             # 256 rows
    assert TrainConfig().resolve(9000, 4).lr == 2e-3            # 512 rows: linear scaling above 256
    for rows in (100, 1000, 10_000, 100_000, 10_000_000):
        cfg = TrainConfig().resolve(rows, 8)
        steps = cfg.epochs * -(-rows // cfg.batch_size)
        assert 60 <= cfg.epochs <= 1000
        assert steps >= 11_000 or cfg.epochs == 1000 or cfg.epochs == 60


def test_what_the_user_set_is_kept_and_only_the_rest_is_filled():
    cfg = TrainConfig(batch_size=64, patience=40).resolve(10_000, 4)
    assert cfg.batch_size == 64 and cfg.lr == 1e-3 and cfg.patience == 40 and cfg.min_patience == 10
    assert TrainConfig(lr=5e-4).resolve(10_000, 4).lr == 5e-4
    assert TrainConfig(epochs=7).resolve(10_000).epochs == 7
    assert cfg.resolved and not TrainConfig().resolved


def test_every_form_of_options_gives_the_same_config():
    as_dict = TrainConfig.coerce({"patience": 40}, seed=3)
    as_object = TrainConfig.coerce(TrainConfig(patience=40, seed=3))
    assert as_dict == as_object
    assert TrainConfig.coerce(None, seed=3) == TrainConfig(seed=3)
    assert TrainConfig.coerce({"seed": 5}, seed=3).seed == 5       # the user's value wins
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['pateince'\]"):
        TrainConfig.coerce({"pateince": 4})
    with pytest.raises(TypeError, match="expected a TrainConfig, a dict"):
        TrainConfig.coerce([("patience", 4)])  # type: ignore[arg-type]


@pytest.mark.parametrize("bad, match", [
    ({"lr": 0.0}, "lr must be"), ({"lr": float("inf")}, "lr must be"), ({"batch_size": 0}, "batch_size"),
    ({"epochs": 2.5}, "epochs"), ({"patience": 0}, "patience"), ({"weight_decay": -1.0}, "weight_decay"),
    ({"warmup": 1.0}, "warmup")])
def test_bad_options_are_refused_by_name(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)
