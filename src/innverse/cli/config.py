"""``innverse fit`` configuration files (TOML): the schema, an example, and the loader."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import UsageError
from .limits import MAX_BATCH, MAX_DRAWS, MAX_EPOCHS, MAX_SAMPLES, MAX_SEED, MAX_SIMULATIONS, MAX_WORKERS
from .schema import Key, describe, validate

__all__ = ["EXAMPLE", "SCHEMA", "load_config", "parse_config", "schema_help"]

SCHEMA: dict[str, dict[str, Key]] = {
    "simulator": {
        "task": Key("string", example='task = "two_moons"',
                    help="a built-in task (innverse demo --list-tasks); or give function + prior"),
        "function": Key("string", example='function = "mysim:simulate"',
                        help="module:function mapping parameters (n, d) to data (n, ...)"),
        "prior": Key("string", example='prior = "mysim:prior"',
                     help="module:attribute naming a torch Distribution (or a function returning one); "
                          "or describe it in a [prior] table"),
        "path": Key("string", example='path = "."', help="folder to import the module from (default: "
                                                          "the config file's folder)"),
        "parameter_names": Key("string list", example='parameter_names = ["mu", "sigma"]'),
        "input": Key("string", "torch", choices=("torch", "numpy"), example='input = "numpy"',
                     help="what your simulator receives: a torch tensor or a numpy array"),
    },
    "simulations": {
        "store": Key("string", example='store = "sims.h5"', help="HDF5 store (made by innverse simulate, "
                                                                  "or filled now); default RUN/simulations.h5"),
        "count": Key("integer", 10_000, minimum=10, maximum=MAX_SIMULATIONS, example="count = 10000",
                      help="simulation budget"),
        "batch_size": Key("integer", 500, minimum=1, maximum=MAX_BATCH, example="batch_size = 500"),
        "workers": Key("integer", 1, minimum=1, maximum=MAX_WORKERS, example="workers = 2",
                       help="simulation processes"),
        "seed": Key("integer", 0, minimum=0, maximum=MAX_SEED, example="seed = 0"),
    },
    "summary": {
        "network": Key("string", "auto", example='network = "deepset"',
                       choices=("auto", "identity", "mlp", "deepset", "set_transformer", "time_series"),
                       help="summary network trained with the flow (auto: identity for vectors, "
                            "deepset for sets)"),
        "output": Key("integer", None, minimum=1, maximum=65_536, example="output = 16", help="summary dimension"),
    },
    "flow": {
        "coupling": Key("string", "auto", choices=("auto", "affine", "spline", "additive", "gin", "autoregressive",
                                                   "autoregressive_spline"),
                        example='coupling = "auto"',
                        help="auto: spline couplings, and for 6+ parameters also masked autoregressive "
                             "blocks, keeping the one with the lower validation loss"),
        "blocks": Key("integer", None, minimum=1, maximum=1024, example="blocks = 6"),
        "hidden": Key("integers", None, minimum=1, maximum=65_536, example="hidden = [64, 64]"),
    },
    "training": {
        "epochs": Key("integer", None, minimum=1, maximum=MAX_EPOCHS, example="epochs = 100",
                       help="maximum epochs"),
        "batch_size": Key("integer", None, minimum=1, maximum=MAX_BATCH, example="batch_size = 256"),
        "learning_rate": Key("number", None, positive=True, example="learning_rate = 5e-4"),
        "validation_fraction": Key("number", None, minimum=0.0, example="validation_fraction = 0.1",
                                   help="held-out fraction for early stopping (default 0.1)"),
        "drop_invalid": Key("boolean", False, example="drop_invalid = true",
                            help="drop stored pairs with NaN/Inf instead of refusing the store"),
        "patience": Key("integer", None, minimum=1, maximum=MAX_EPOCHS, example="patience = 10",
                        help="early stopping after at most this many epochs without improvement (default 20)"),
        "min_patience": Key("integer", None, minimum=1, maximum=MAX_EPOCHS, example="min_patience = 10",
                            help="...but at least this many, else as many as it took to reach the best epoch "
                                 "(default 10; equal to patience: fixed)"),
        "max_seconds": Key("number", None, positive=True, example="max_seconds = 600",
                           help="wall-time budget of training: it stops then, with the learning rate "
                                "decayed by that time (default: none)"),
        "budget": Key("string", None, choices=("fast", "accurate"), example='budget = "fast"',
                      help="fast: one candidate flow where the default races two (6+ parameters); accurate (an "
                           "ensemble) needs pairs in memory, not a store, so innverse fit refuses it"),
        "seed": Key("integer", 0, minimum=0, maximum=MAX_SEED, example="seed = 0"),
        "device": Key("string", "cpu", example='device = "cuda"',
                      help="where the networks train: cpu, cuda or cuda:N (innverse fit --device overrides)"),
    },
    "diagnostics": {
        "simulations": Key("integer", 200, minimum=10, maximum=MAX_SAMPLES, example="simulations = 200",
                           help="simulated data sets for SBC / coverage / recovery"),
        "samples": Key("integer", 500, minimum=10, maximum=MAX_SAMPLES, example="samples = 500",
                       help="posterior samples per data set"),
        "seed": Key("integer", 1, minimum=0, maximum=MAX_SEED, example="seed = 1"),
    },
}

EXAMPLE = '''\
# innverse fit config: where simulations come from, the estimator, and how to train it.
[simulator]
task = "two_moons"                # a built-in task, or your own simulator:
# function = "mysim:simulate"     # mysim.py next to this file: simulate(theta (n, d)) -> x (n, ...)
# prior = "mysim:prior"           # a torch.distributions.Distribution over theta

[simulations]
count = 10000                     # simulation budget
workers = 2
seed = 0

[summary]
network = "auto"                  # "deepset" for sets, "time_series" for sequences

[flow]
coupling = "auto"                 # or "spline", "affine", "autoregressive", ...

[training]
epochs = 100
patience = 10
# max_seconds = 600               # a wall-time budget: training ends then, its learning rate decayed

[diagnostics]
simulations = 200
'''


def schema_help() -> str:
    return describe(SCHEMA) + "\n[prior]\n  a prior description (see innverse.amortized.prior_from_config)"


def parse_config(data: dict[str, Any], file: str, base: Path) -> dict[str, dict[str, Any]]:
    """Validate a parsed config; check the cross-key rules; resolve paths against ``base``."""
    cfg = validate(data, SCHEMA, file, open_sections=("prior",))
    sim = cfg["simulator"]
    if sim["task"] is None and sim["function"] is None:
        raise UsageError(f"{file}: missing key 'simulator.task' or 'simulator.function' (a string): say "
                         'where simulations come from, e.g. task = "two_moons" or function = "mysim:simulate"')
    if sim["task"] is not None and sim["function"] is not None:
        raise UsageError(f"{file}: give either 'simulator.task' or 'simulator.function', not both")
    if sim["function"] is not None and sim["prior"] is None and "prior" not in cfg:
        raise UsageError(f"{file}: missing key 'simulator.prior' (a string, e.g. prior = \"mysim:prior\") "
                         "or a [prior] table: a user simulator needs its prior")
    if sim["task"] is not None and (sim["prior"] is not None or "prior" in cfg):
        raise UsageError(f"{file}: a built-in task has its own prior; remove 'simulator.prior' / [prior]")
    sim["path"] = str((base / sim["path"]).resolve()) if sim["path"] is not None else str(base.resolve())
    store = cfg["simulations"]["store"]
    if store is not None:
        cfg["simulations"]["store"] = str((base / store).resolve())
    _check_budgets(cfg, file)
    return cfg


#: fewer training pairs than this cannot train a posterior (the library's own minimum)
MIN_TRAINING_PAIRS = 10
#: the validation fraction innverse fit uses when the config gives none
DEFAULT_VALIDATION_FRACTION = 0.1


def training_rows(count: int, fraction: float | None) -> int:
    """Training pairs left of ``count`` simulations after the validation split."""
    frac = DEFAULT_VALIDATION_FRACTION if fraction is None else fraction
    return count - round(frac * count)


def _check_budgets(cfg: dict[str, dict[str, Any]], file: str) -> None:
    """Cross-key rules: a validation split that leaves pairs to train on, a budget preset that trains from a
    store, a bounded diagnostics budget."""
    frac, count = cfg["training"]["validation_fraction"], cfg["simulations"]["count"]
    if frac is not None and not 0.0 < frac < 1.0:
        raise UsageError(f"{file}: key 'training.validation_fraction' must be a number in (0, 1), got {frac}")
    if training_rows(count, frac) < MIN_TRAINING_PAIRS:
        given = f"= {frac}" if frac is not None else f"(default {DEFAULT_VALIDATION_FRACTION})"
        raise UsageError(f"{file}: key 'training.validation_fraction' {given} holds out "
                         f"{count - training_rows(count, frac)} of simulations.count = {count} simulations, "
                         f"leaving {training_rows(count, frac)} to train on (at least {MIN_TRAINING_PAIRS} "
                         "needed); lower the fraction or raise the count")
    if cfg["training"]["budget"] == "accurate":
        raise UsageError(f"{file}: key 'training.budget' = \"accurate\" trains an ensemble of posteriors, which "
                         "needs the simulations in memory; innverse fit trains from a store: use \"fast\" or leave "
                         "the key out (the default)")
    diag = cfg["diagnostics"]
    if diag["simulations"] * diag["samples"] > MAX_DRAWS:
        raise UsageError(f"{file}: keys 'diagnostics.simulations' x 'diagnostics.samples' = "
                         f"{diag['simulations']} x {diag['samples']} posterior draws exceed the limit "
                         f"{MAX_DRAWS:,}; lower one of them")


def load_config(path: str | os.PathLike[str]) -> tuple[dict[str, dict[str, Any]], str]:
    """Read and validate a TOML config; return ``(config, text)``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"config file {path} does not exist (innverse fit --example-config prints one)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not a UTF-8 text file (byte {err.start}: {err.reason}); save the config "
                         "as UTF-8 TOML") from err
    except OSError as err:
        raise UsageError(f"config file {path} cannot be read: {err.strerror or err}") from err
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{path}: not valid TOML: {err}") from err
    return parse_config(data, str(path), path.parent), text
