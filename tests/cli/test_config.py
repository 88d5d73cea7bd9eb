"""Config files: every mistake names the key, the expected type and what was found."""

from __future__ import annotations

from pathlib import Path

import pytest

from innverse.cli.config import EXAMPLE, load_config, parse_config, schema_help
from innverse.cli.errors import UsageError
from innverse.cli.tomlwrite import to_toml


def _parse(text: str, tmp_path: Path) -> dict:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_config(path)[0]


def test_example_config_is_valid_and_defaults_fill_in(tmp_path: Path) -> None:
    cfg = _parse(EXAMPLE, tmp_path)
    assert cfg["simulator"]["task"] == "two_moons"
    assert cfg["simulations"]["count"] == 10000 and cfg["simulations"]["batch_size"] == 500
    assert cfg["flow"]["coupling"] == "auto" and cfg["training"]["epochs"] == 100
    assert cfg["training"]["learning_rate"] is None  # left to the estimator's default
    assert Path(cfg["simulator"]["path"]) == tmp_path.resolve()


@pytest.mark.parametrize(("text", "message"), [
    ('[simulations]\ncount = 10', "missing key 'simulator.task' or 'simulator.function'"),
    ('[simulator]\ntask = "two_moons"\n[training]\nepochs = "ten"',
     "key 'training.epochs' must be an integer (e.g. epochs = 100), got the string 'ten'"),
    ('[simulator]\ntask = "two_moons"\n[training]\nlearning_rate = true',
     "key 'training.learning_rate' must be a number (e.g. learning_rate = 5e-4), got the boolean True"),
    ('[simulator]\ntask = "two_moons"\n[flow]\nhidden = [64, "wide"]',
     "key 'flow.hidden' must be a list of integers (e.g. hidden = [64, 64])"),
    ('[simulator]\ntask = "two_moons"\n[flow]\ncoupling = "splin"',
     "key 'flow.coupling' must be one of 'auto', 'affine', 'spline', 'additive', 'gin', 'autoregressive', "
     "'autoregressive_spline', got 'splin' "
     "(did you mean 'spline'?)"),
    ('[simulator]\ntask = "two_moons"\n[training]\nepoch = 3',
     "unknown key 'training.epoch' (did you mean 'training.epochs'?)"),
    ('[simulator]\ntask = "two_moons"\n[trainig]\nepochs = 3', "unknown section [trainig] (did you mean [training]?)"),
    ('[simulator]\ntask = "two_moons"\n[simulations]\ncount = -5', "key 'simulations.count' must be >= 10"),
    ('simulator = "two_moons"', "'simulator' must be a table ([simulator] followed by keys)"),
    ('[simulator]\nfunction = "m:f"', "missing key 'simulator.prior' (a string"),
    ('[simulator]\ntask = "two_moons"\nfunction = "m:f"', "either 'simulator.task' or 'simulator.function'"),
    ('[simulator]\ntask = "two_moons"\n[training]\nvalidation_fraction = 1.5',
     "'training.validation_fraction' must be a number in (0, 1)"),
    ('[simulator]\ntask = "two_moons"\nparameter_names = [1, 2]',
     "key 'simulator.parameter_names' must be a list of strings"),
    ("[simulator\ntask = 1", "not valid TOML"),
    ('[simulator]\ntask = "two_moons"\n[training]\nbudget = "quick"',
     "key 'training.budget' must be one of 'fast', 'accurate', got 'quick'"),
    ('[simulator]\ntask = "two_moons"\n[training]\nbudget = "accurate"',
     "key 'training.budget' = \"accurate\" trains an ensemble of posteriors, which needs the simulations in memory; "
     "innverse fit trains from a store: use \"fast\" or leave the key out"),
])
def test_mistakes_are_explained(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        _parse(text, tmp_path)
    assert message in str(err.value)
    assert str(tmp_path / "c.toml") in str(err.value)  # the message names the file


def test_the_budget_preset_is_optional(tmp_path: Path) -> None:
    assert _parse('[simulator]\ntask = "two_moons"', tmp_path)["training"]["budget"] is None
    assert _parse('[simulator]\ntask = "two_moons"\n[training]\nbudget = "fast"', tmp_path)["training"]["budget"] == "fast"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"does not exist.*--example-config"):
        load_config(tmp_path / "nope.toml")


def test_written_toml_reads_back(tmp_path: Path) -> None:
    raw = {"simulator": {"task": "two_moons", "parameter_names": ['a"b', "c"]},
           "flow": {"coupling": "affine", "hidden": [8, 8], "blocks": None},
           "training": {"learning_rate": 1e-3, "epochs": 3}}
    text = to_toml(raw, "header line")
    assert text.startswith("# header line")
    cfg = _parse(text, tmp_path)
    assert cfg["simulator"]["parameter_names"] == ['a"b', "c"]
    assert cfg["flow"]["hidden"] == [8, 8] and cfg["flow"]["blocks"] is None
    assert cfg["training"]["learning_rate"] == 1e-3


def test_characters_outside_the_basic_plane_round_trip(tmp_path: Path) -> None:
    import tomllib

    text = to_toml({"simulations": {"store": "runs/\U0001F600/sims.h5"}})
    assert tomllib.loads(text)["simulations"]["store"] == "runs/\U0001F600/sims.h5"


def test_schema_help_lists_every_key() -> None:
    text = schema_help()
    for key in ("task", "function", "prior", "count", "workers", "network", "coupling", "epochs",
                "patience", "simulations"):
        assert f"  {key} " in text


def test_parse_config_resolves_relative_paths(tmp_path: Path) -> None:
    cfg = parse_config({"simulator": {"function": "m:f", "prior": "m:p", "path": "sub"},
                        "simulations": {"store": "data/s.h5"}}, "x.toml", tmp_path)
    assert cfg["simulator"]["path"] == str((tmp_path / "sub").resolve())
    assert cfg["simulations"]["store"] == str((tmp_path / "data" / "s.h5").resolve())
