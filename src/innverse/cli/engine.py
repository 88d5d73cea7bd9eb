"""The command line's bridge to the library: simulation store, training, sampling, diagnostics.

Every call into :mod:`innverse.amortized`, :mod:`innverse.train` and :mod:`innverse.diagnostics`
made by the commands goes through this module, so the commands read as a pipeline and the
library's API is used in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..report.run import RunLayout
from .console import Console
from .errors import JobError, UsageError
from .problem import Problem

__all__ = ["diagnose", "misspecification", "sample", "sample_task_observations", "simulate", "train",
           "x_shape_of"]


def _probe_x_shape(problem: Problem, seed: int) -> tuple[int, ...]:
    """Shape of one simulation, from the task or from two trial simulations."""
    from ..amortized import simulate as run

    if problem.x_shape is not None:
        return tuple(problem.x_shape)
    try:
        sims = run(problem.simulator, prior=problem.prior, n=2, batch_size=2, workers=0, seed=seed + 7919,
                   theta_format=problem.theta_format, progress=False)
    except RuntimeError as err:
        raise JobError(f"the simulator failed on its first two parameter draws: {err}") from err
    except (TypeError, ValueError) as err:
        raise UsageError(f"the simulator cannot be called as simulator(theta (n, d)) -> x (n, ...): "
                         f"{type(err).__name__}: {err}") from err
    return tuple(int(s) for s in sims.x.shape[1:])


def _open_store(store: Path) -> Any:
    """An existing store, opened for appending; what stands in the way is a one-line error."""
    from ..amortized import SimulationStore
    from ..amortized.store_lock import StoreBusyError

    try:
        return SimulationStore(store, "a")
    except StoreBusyError as err:
        raise JobError(str(err)) from err
    except PermissionError as err:
        raise UsageError(f"{store} is not writable ({err}); choose another store") from err
    except ValueError as err:
        raise UsageError(f"{store} exists but is not a simulation store ({err}); choose another path") from err


def _shapes_agree(probe: tuple[int, ...], stored: tuple[int, ...]) -> bool:
    """A simulation of shape ``probe`` fits a store of ``stored`` (sets: any number of rows)."""
    return probe == stored or (len(probe) >= 2 and len(probe) == len(stored) and probe[1:] == stored[1:])


def _check_store_source(handle: Any, problem: Problem, seed: int, console: Console) -> None:
    """The store was filled by this problem's simulator: same identity, parameters and data shape."""
    from ..amortized.simulation import same_simulator, simulator_name

    name, recorded = simulator_name(problem.simulator), handle.simulator
    theta_dim = int(problem.prior.event_shape[0])
    x_shape = _probe_x_shape(problem, seed)
    if not same_simulator(recorded, name) or theta_dim != handle.theta_dim or \
            not _shapes_agree(x_shape, handle.x_shape):
        raise UsageError(
            f"{handle.path} holds simulations of {recorded or 'a simulator it does not name'} "
            f"({handle.theta_dim} parameters, data of shape {handle.x_shape}), but this run's simulator is "
            f"{name} ({theta_dim} parameters, data of shape {x_shape}); use a new store "
            "(simulations.store / --out) or the simulator that filled it")
    if recorded is None:
        console.warn(f"{handle.path} does not record which simulator filled it (an older store); "
                     "only its shapes were checked against this simulator")


def _check_disk(store: Path, rows: int, theta_dim: int, x_shape: tuple[int, ...]) -> None:
    """Refuse a simulation budget that cannot fit on the disk of ``store`` (float32 rows)."""
    import shutil

    need = rows * (theta_dim + int(np.prod(x_shape))) * 4
    folder = next((p for p in (store.parent, *store.parent.parents) if p.exists()), Path("."))
    free = shutil.disk_usage(folder).free
    if need > free:
        raise UsageError(f"{rows:,} simulations of data shape {x_shape} need about {need / 1e9:.3g} GB in {store}, "
                         f"but only {free / 1e9:.3g} GB are free there; lower the count or choose another store")


def _new_store(problem: Problem, store: Path, count: int, batch_size: int, seed: int) -> Any:
    from ..amortized import SimulationStore
    from ..amortized.simulation import simulator_name

    x_shape = _probe_x_shape(problem, seed)
    theta_dim = int(problem.prior.event_shape[0])
    _check_disk(store, count, theta_dim, x_shape)
    try:
        return SimulationStore.create(store, theta_dim, x_shape, chunk_rows=min(1024, max(batch_size, 64)),
                                      simulator=simulator_name(problem.simulator))
    except OSError as err:
        raise UsageError(f"cannot create the store {store}: {err}") from err


def _executor(workers: int, dask: str | None, timeout: float) -> Any:
    """What ``simulate(workers=...)`` gets: a process count, or a Dask cluster (``"local"`` or an address)."""
    if dask is None:
        return 0 if workers <= 1 else workers
    from ..amortized.dask_executor import DaskCluster

    try:
        return DaskCluster(address=None if dask == "local" else dask, workers=workers, timeout=timeout)
    except ValueError as err:
        raise UsageError(f"--dask: {err}".replace("DaskCluster: timeout", "--dask-timeout")) from err


def simulate(problem: Problem, store: Path, count: int, batch_size: int, workers: int, seed: int,
             console: Console, dask: str | None = None, dask_timeout: float = 10.0) -> dict[str, Any]:
    """Fill (or continue filling) the HDF5 store at ``store`` up to ``count`` simulations.

    Resumable: the store records which batches are done, and every batch has its own seed, so an
    interrupted run continues with the same result. ``workers <= 1`` simulates in this process;
    ``dask`` runs the batches on Dask (``"local"``: a local cluster of ``workers`` processes, else
    a scheduler address). An existing store must hold simulations of this problem's simulator
    (identity, parameter dimension and data shape), else it is a usage error naming both.
    """
    from ..amortized import simulate as run

    executor = _executor(workers, dask, dask_timeout)

    store = Path(store)
    created = False
    if store.exists():
        handle = _open_store(store)
        try:
            _check_store_source(handle, problem, seed, console)
            done = _completed(handle, store, count, batch_size, seed, console)
        except BaseException:
            handle.close()
            raise
        if done is not None:
            return done
    else:
        handle = _new_store(problem, store, count, batch_size, seed)
        created = True
    try:
        sims = run(problem.simulator, prior=problem.prior, n=count, batch_size=batch_size, workers=executor,
                   seed=seed, store=handle, theta_format=problem.theta_format, progress=console.show_progress)
        rows, progress, errors = handle.rows, handle.progress, handle.errors
    except (ConnectionError, TypeError, ImportError, RuntimeError, ValueError) as err:
        untouched = handle.progress["batches_done"] == 0
        handle.close()
        if created and untouched:  # refused before a batch was kept (Dask): no empty store is left behind
            store.unlink(missing_ok=True)
        raise _refusal(err) from err
    finally:
        handle.close()
    failed = progress["exceptions"] + progress["nonfinite"]
    if failed:
        console.warn(f"{failed} simulations failed and were dropped; most frequent errors: "
                     + "; ".join(f"{msg} (x{k})" for msg, k in list(errors.items())[:3]))
    stats = {"simulations": rows, "added": sims.report.succeeded, "failed": failed, "errors": errors}
    if sims.report.dashboard is not None:
        stats.update(dask_workers=sims.report.workers, dashboard=sims.report.dashboard)
    return stats


def _refusal(err: Exception) -> Exception:
    """The command's error for a failed simulation: the job failed (exit 1) or the usage is wrong (exit 2)."""
    if isinstance(err, ConnectionError | RuntimeError):
        # every simulation failed; a Dask scheduler that does not answer; workers that cannot import the simulator
        return JobError(str(err))
    if isinstance(err, ImportError):
        return UsageError(f"--dask needs dask.distributed: pip install 'innverse[dask]' ({err})")
    # output changing shape, a store of other settings; a simulator Dask cannot send (not picklable)
    return UsageError(str(err))


def _completed(handle: Any, store: Path, count: int, batch_size: int, seed: int,
               console: Console) -> dict[str, Any] | None:
    """The result for a store that already holds its simulations (closed); ``None`` to go on filling it."""
    settings = handle.settings
    if settings and int(settings.get("n", -1)) == count and handle.progress["batches_done"] * \
            int(settings.get("batch_size", batch_size)) >= count:
        rows, errors, progress = handle.rows, handle.errors, handle.progress
        handle.close()
        console.note(f"{store} already holds its {rows} simulations")
        return {"simulations": rows, "added": 0, "failed": progress["exceptions"] + progress["nonfinite"],
                "errors": errors}
    if settings and handle.progress["batches_done"] and (
            settings.get("seed"), settings.get("batch_size"), settings.get("n")) != (seed, batch_size, count):
        raise UsageError(f"{store} was filled with seed={settings.get('seed')}, batch size "
                         f"{settings.get('batch_size')} and {settings.get('n')} simulations; continue it "
                         f"with the same settings, or write to a new store")
    return None


def train(problem: Problem, store: Path, cfg: dict[str, dict[str, Any]], layout: RunLayout, resume: bool,
          console: Console, device: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Train a posterior estimator on the store (on ``device``); checkpoint and log go into the run directory."""
    from ..amortized import fit_posterior
    from ..amortized.store_lock import StoreBusyError
    from ..train import NonFiniteLossError, load_checkpoint
    from .config import DEFAULT_VALIDATION_FRACTION

    summary, flow, training = cfg["summary"], cfg["flow"], cfg["training"]
    checkpoint = layout.checkpoints / "training.ckpt"
    resumed_from = 0
    if resume and checkpoint.is_file():
        resumed_from = int(load_checkpoint(checkpoint)["epoch"])
        console.note(f"resuming from the checkpoint after epoch {resumed_from}")
    overrides = {"epochs": training["epochs"], "lr": training["learning_rate"], "patience": training["patience"],
                 "min_patience": training["min_patience"], "seed": training["seed"],
                 "batch_size": training["batch_size"], "max_seconds": training["max_seconds"]}
    # "auto": the library's defaults, including the choice between candidate flows
    options = {k: v for k, v in flow.items() if v is not None and not (k == "coupling" and v == "auto")}
    try:
        posterior = fit_posterior(
            store=str(store), prior=problem.prior,
            summary=summary["network"],
            summary_options={"out_features": summary["output"]} if summary["output"] else None,
            flow=options or None, training={k: v for k, v in overrides.items() if v is not None},
            validation_fraction=training["validation_fraction"] or DEFAULT_VALIDATION_FRACTION,
            drop_invalid=training["drop_invalid"], seed=training["seed"], checkpoint=checkpoint, resume=resume,
            log_path=layout.training_log, progress=console.show_progress, device=device, budget=training["budget"])
    except (NonFiniteLossError, StoreBusyError) as err:
        raise JobError(str(err)) from err
    except (ValueError, TypeError) as err:  # the data or the options cannot train a posterior
        raise UsageError(f"cannot train on {store}: "
                         + str(err).replace("pass drop_invalid=True", "set drop_invalid = true in [training]")) from err
    from ..report.run import update_run_json

    if _first_process():
        update_run_json(layout, x_shape=list(posterior.x_shape))
    return posterior, _fit_stats(posterior, resumed_from)


def _first_process() -> bool:
    """Whether this process writes the run directory (rank 0 of a data-parallel run, or the only one)."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _fit_stats(posterior: Any, resumed_from: int) -> dict[str, Any]:
    """What run.json records of a fit, read from the posterior's typed training report."""
    report = posterior.report
    h = report.history
    stats = {"epochs": h.epochs, "best_epoch": h.best_epoch, "best_val_loss": h.best_val_loss,
             "stopped_early": h.stopped_early, "out_of_time": h.out_of_time, "skipped_steps": h.skipped_steps,
             "training_seconds": round(h.seconds, 2), "resumed_from_epoch": resumed_from,
             "x_shape": list(posterior.x_shape), "flow": posterior.estimator.flow_options.coupling,
             "training_pairs": report.training_pairs, "batch_size": report.batch_size, "mode": report.mode,
             "log_features": report.log_features, "training": report.training.to_dict(), "budget": report.budget}
    if report.compared_flows:
        # several candidate flows were trained: name them, and point the report at the kept one's log
        # a candidate is its coupling, and its summary network where the race had one ("spline + MLPSummary"),
        # and its learning rate where two share both ("spline + MLPSummary, lr 0.004")
        names = [c.flow["coupling"] + (f" + {c.summary}" if c.summary else "") for c in report.candidates]
        names = [n + (f", lr {c.lr:.3g}" if names.count(n) > 1 and c.lr is not None else "")
                 for n, c in zip(names, report.candidates)]
        # the selection criterion: the held-out parameters' negative log density (theta_val_loss), where it is one
        losses = [c.val_loss if c.theta_val_loss is None else c.theta_val_loss for c in report.candidates]
        stats["flow_selection"] = {"candidates": names,
                                   "val_loss": [None if v is None else round(v, 4) for v in losses],
                                   "kept": names[report.chosen]}
        log = report.candidates[report.chosen].log_path
        if log is not None:
            stats["training_log"] = Path(log).name
    return stats


def x_shape_of(model: Any) -> tuple[int, ...]:
    """Per-observation data shape the model was trained on."""
    return tuple(model.x_shape)


def sample(model: Any, obs: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` posterior samples for each of the ``k`` observations: ``(n, k, d)``."""
    try:
        s = model.sample(n, np.asarray(obs, dtype=np.float32), seed=seed)
    except ValueError as err:
        raise UsageError(f"the observations do not fit the model: {err}") from err
    return s.detach().cpu().numpy().reshape(n, len(obs), -1)


def misspecification(model: Any, obs: np.ndarray, level: float = 0.01, seed: int = 0) -> list[dict[str, Any]]:
    """Score each observation's summary against the training summaries kept in the model.

    A conformal outlier detector (:class:`innverse.diagnostics.SummaryOutlierDetector`) fitted on
    the reference summaries flags observations whose score exceeds the level-``level`` threshold:
    their posterior is an extrapolation beyond what the simulator produced in training.
    """
    from ..diagnostics import SummaryOutlierDetector

    reference = getattr(model, "reference_summaries", None)
    if reference is None or reference.shape[0] == 0:
        return []
    try:
        detector = SummaryOutlierDetector(reference, level=level, seed=seed)
    except ValueError:
        return []  # too few training summaries for a calibrated threshold at this level
    summaries = model.summaries(np.asarray(obs, dtype=np.float32)).reshape(len(obs), -1)
    scores = detector.score(summaries)
    p_values = detector.p_values(summaries)
    flags = detector.flags(summaries)
    return [{"observation": i, "score": float(scores[i]), "threshold": float(detector.threshold),
             "p_value": float(p_values[i]), "flagged": bool(flags[i]), "level": level}
            for i in range(len(obs))]


def flags_from_check(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-observation misspecification rows from a diagnostics result (empty without observations)."""
    m = result.get("misspecification", {})
    if not m.get("available"):
        return []
    return [{"observation": i, "score": s, "threshold": m["threshold"], "p_value": p, "flagged": bool(f),
             "level": m.get("level")} for i, (s, p, f) in enumerate(zip(m["scores"], m["p_values"], m["flags"]))]


def sample_task_observations(posterior: Any, task: Any, k: int, n: int, path: Path,
                             seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Posterior samples for a task's first ``k`` fixed observations, with truth and reference.

    Writes ``path`` (.npz: ``samples (n, k, D)``, ``observations``, ``true_parameters``,
    ``reference (n, k, D)``, ``parameter_names``); returns the observations and reference samples.
    """
    from .observations import write_samples

    k = min(k, task.num_observations)
    obs = np.stack([task.observation(i).numpy() for i in range(k)]).astype(np.float64)
    samples = sample(posterior, obs, n, seed)
    # 10,000 draws is the tasks' default, so the cache the benchmarks fill is shared
    reference = [task.reference_posterior(i, max(n, 10_000)).numpy()[:n] for i in range(k)]
    write_samples(path, samples, list(task.parameter_names), obs,
                  extra={"true_parameters": np.stack([task.true_parameters(i).numpy() for i in range(k)]),
                         "reference": np.stack(reference, axis=1)})
    return obs, reference


def diagnose(model: Any, problem: Problem, n: int, m: int, seed: int, out_dir: Path, console: Console,
             observations: np.ndarray | None = None,
             reference_samples: list[np.ndarray] | None = None) -> dict[str, Any]:
    """The diagnostics battery (:func:`innverse.diagnostics.check`); plots and JSON go to ``out_dir``."""
    from ..diagnostics import check

    try:
        result = check(model, problem.prior, _simulator_for_check(problem), n=n, samples=m, seed=seed,
                       out_dir=out_dir, observations=observations, reference_samples=reference_samples,
                       parameter_names=problem.parameter_names)  # loss curves: the report draws them
    except ValueError as err:
        raise JobError(f"the diagnostics could not run: {err}") from err
    return result.to_dict()


def _simulator_for_check(problem: Problem) -> Any:
    """The simulator as check() calls it: ``theta (m, D)`` tensor in, data out."""
    if problem.theta_format == "torch":
        return problem.simulator

    def call(theta: Any) -> Any:
        return problem.simulator(theta.detach().cpu().numpy())

    return call
