"""``innverse sample RUN --obs FILE``: posterior samples for observations."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ...report.run import RunLayout
from ..console import Console
from ..errors import UsageError
from ..limits import MAX_DRAWS, MAX_SAMPLES, MAX_SEED, check_range
from ..observations import (
    SAMPLE_FORMATS,
    arviz_available,
    read_observations,
    write_inference_data,
    write_samples,
)
from ..runinfo import ensure_writable, read_run, record_step

HELP = "draw posterior samples for observations in a .npy/.csv file"
DESCRIPTION = """\
Load the run's trained posterior and draw samples for every observation in FILE: a .npy array of
one observation (the data's shape) or a batch (k, ...), or a .csv with one observation per row.
Samples are written to RUN/samples/<FILE name>.npz (and .nc, an ArviZ InferenceData, when arviz is
installed), or to --out (.npz, .csv or .nc). Each observation is also scored for misspecification:
one far outside the simulations is flagged, because its posterior is an extrapolation. Sampling
loads only the model file (weights and a JSON description); no code of the run is imported.

  innverse sample runs/mine --obs data.npy -n 2000
  innverse sample runs/mine --obs data.csv --out posterior.csv
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="run directory (made by innverse fit or demo)")
    p.add_argument("--obs", type=Path, required=True, help="observations, .npy or .csv")
    p.add_argument("-n", "--samples", type=int, default=1000, help="samples per observation (default 1000)")
    p.add_argument("--out", type=Path, help=f"output file {'/'.join(SAMPLE_FORMATS)} "
                                            "(default RUN/samples/<FILE name>.npz)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")


def load_model(layout: RunLayout):
    """The run's posterior; a missing or damaged model file is a usage error naming it."""
    from ...io import load

    if not layout.model.is_file():
        raise UsageError(f"{layout.root} has no trained model ({layout.model.name}); run innverse fit first")
    from ...amortized import Posterior

    try:
        model = load(layout.model)
    except (ValueError, OSError) as err:  # ModelFileError is a ValueError
        raise UsageError(f"the model file {layout.model} cannot be loaded: {err}") from err
    if not isinstance(model, Posterior):   # a file saved from Python (an ensemble, a likelihood posterior)
        kind = type(model).__name__
        article = "an" if kind[0] in "AEIOU" else "a"
        raise UsageError(f"the model file {layout.model} holds {article} {kind}; the command line works "
                         "with the posterior innverse fit trains (load this one with innverse.load in Python)")
    return model


def _names(info: dict, d: int) -> list[str]:
    names = info.get("parameter_names")
    if isinstance(names, list) and len(names) == d and all(isinstance(n, str) for n in names):
        return names
    return [f"theta_{i + 1}" for i in range(d)]


def run(args: argparse.Namespace, console: Console) -> dict:
    from .. import engine

    layout = RunLayout(args.run)
    info = read_run(layout)
    if args.samples < 1:
        raise UsageError(f"--samples must be a positive integer, got {args.samples}")
    check_range("--samples", args.samples, 1, MAX_SAMPLES)
    check_range("--seed", args.seed, 0, MAX_SEED)
    if args.out is not None and args.out.suffix.lower() not in SAMPLE_FORMATS:
        raise UsageError(f"--out {args.out}: unknown format {args.out.suffix!r}; use one of "
                         f"{', '.join(SAMPLE_FORMATS)}")
    model = load_model(layout)
    obs = read_observations(args.obs, engine.x_shape_of(model))
    if args.samples * len(obs) > MAX_DRAWS:
        raise UsageError(f"--samples x observations = {args.samples} x {len(obs)} posterior draws exceed the "
                         f"limit {MAX_DRAWS:,}; sample fewer at a time")
    outs = [args.out] if args.out else [layout.samples / f"{args.obs.stem}.npz"]
    if args.out is None and arviz_available():
        outs.append(layout.samples / f"{args.obs.stem}.nc")
    for folder in {out.parent for out in outs}:
        ensure_writable(folder, "the samples")
    t = time.perf_counter()
    with console.step(f"sampling {args.samples} x {len(obs)} observation(s)"):
        samples = engine.sample(model, obs, args.samples, args.seed)
    names = _names(info, samples.shape[-1])
    written: list[Path] = []
    for out in outs:
        if out.suffix.lower() == ".nc":
            if not arviz_available():
                raise UsageError("writing .nc (ArviZ InferenceData) needs arviz: pip install 'innverse[arviz]'")
            written += write_inference_data(out, model, obs, args.samples, names, args.seed)
        else:
            written.append(write_samples(out, samples, names, obs))
    outs = written
    flags = engine.misspecification(model, obs)
    for f in flags:
        if f.get("flagged"):
            console.warn(f"observation {f['observation']} lies far outside the simulations "
                         f"(score {f['score']:.3g} > threshold {f['threshold']:.3g}); its posterior is "
                         "an extrapolation")
    record_step(layout, "sample", time.perf_counter() - t, console=console, observations=len(obs),
                samples=args.samples, files=[str(o) for o in outs], misspecification=flags)
    result = {"samples": [str(o) for o in outs], "observations": len(obs), "misspecification": flags}
    console.result(result, "samples: " + ", ".join(map(str, outs)))
    return result
