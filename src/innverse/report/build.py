"""Build ``report.html`` for a run directory: verdicts, posterior, training, diagnostics, settings.

The report reads only files in the run directory (``run.json``, ``training_log.jsonl``,
``samples/*.npz``, ``diagnostics/diagnostics.json`` and the plots it names), so it can be rebuilt
at any time with ``innverse report RUN`` and never needs the model or the simulator.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..diagnostics.plot_posterior import pair_plot
from ..diagnostics.plot_training import loss_plot
from .diagnostics_tables import (
    CALIBRATION_WORDS,
    RECOVERY_WORDS,
    fmt_number,
    number_tables,
    verdicts_from_diagnostics,
)
from .figures import figure_to_data_uri, file_to_data_uri
from .page import Code, Figure, Pass, Section, Table, Text, Verdict, render_page
from .run import RunLayout, atomic_write_text, read_json, read_jsonl

__all__ = ["build_report", "verdicts_from_diagnostics"]


_CAPTIONS = {
    "sbc_rank_histogram": "SBC rank histograms: ranks of the true parameters among posterior samples "
                          "should be uniform (inside the grey band)",
    "sbc_ecdf": "SBC ECDF difference with simultaneous 95% band (Säilynoja et al. 2022): a curve "
                "leaving the band means miscalibration",
    "coverage": "Expected coverage of central, highest-density and TARP credible regions: on the "
                "diagonal = calibrated, below = over-confident, above = under-confident",
    "recovery": "Posterior mean ± sd against the true parameter of each simulated data set",
    "zscore_contraction": "Posterior z-score against contraction (Schad et al. 2021): good posteriors "
                          "contract (right) with |z| < 2",
}


def _aspect(path: Path) -> float:
    """Width / height of a PNG (1.0 for other formats)."""
    import struct

    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return 1.0
    w, h = struct.unpack(">II", head[16:24])
    return w / max(h, 1)


def _plot_paths(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Every ``(name, path)`` of an image file named anywhere in a (nested) diagnostics result."""
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            found += _plot_paths(v, f"{prefix}{k}." if prefix or k != "plots" else "")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += _plot_paths(v, f"{prefix}{i}.")
    elif isinstance(obj, str) and obj.lower().endswith((".png", ".svg", ".jpg", ".jpeg")):
        found.append((prefix.rstrip(".") or Path(obj).stem, obj))
    return found


def _resolve(path: str, layout: RunLayout) -> Path | None:
    for base in (Path(), layout.diagnostics, layout.root):
        p = base / path if not Path(path).is_absolute() else Path(path)
        if p.is_file():
            return p
        p = layout.diagnostics / Path(path).name
        if p.is_file():
            return p
    return None


def _posterior_sections(layout: RunLayout, names: list[str], misspec: list[dict]) -> list[Any]:
    blocks: list[Any] = []
    files = sorted(layout.samples.glob("*.npz")) if layout.samples.is_dir() else []
    for file in files:
        with np.load(file, allow_pickle=False) as z:
            samples = z["samples"]
            truth = z["true_parameters"] if "true_parameters" in z.files else None
            ref = z["reference"] if "reference" in z.files else None
            pnames = [str(s) for s in z["parameter_names"]] if "parameter_names" in z.files else names
        n, k, d = samples.shape
        for i in range(k):
            label = f"{file.stem}, observation {i}" if len(files) > 1 else f"observation {i}"
            fig = pair_plot(samples[:, i], truth=None if truth is None else truth[i],
                            reference=None if ref is None else ref[:, i], labels=pnames, title=f"Posterior, {label}")
            blocks.append(Figure(figure_to_data_uri(fig), f"Posterior pair plot for {label}: {n} samples"
                                 + ("; dashed: reference posterior" if ref is not None else "")
                                 + ("; red: true parameters" if truth is not None else "")))
            s = samples[:, i]
            q05, q50, q95 = np.quantile(s, [0.05, 0.5, 0.95], axis=0)
            rows = [[pnames[j], float(s[:, j].mean()), float(s[:, j].std()), float(q05[j]), float(q50[j]),
                     float(q95[j])] + ([float(truth[i, j])] if truth is not None else []) for j in range(d)]
            blocks.append(Table(["parameter", "mean", "sd", "5%", "median", "95%"]
                                + (["truth"] if truth is not None else []), rows,
                                caption=f"Posterior summary, {label}"))
    if not files:
        blocks.append(Text("No posterior samples yet: run innverse sample RUN --obs FILE."))
    if misspec:
        rows = [[m.get("observation", i), m.get("score", float("nan")), m.get("threshold", float("nan")),
                 "far outside the simulations" if m.get("flagged") else "in distribution",
                 Pass(not m.get("flagged", False))] for i, m in enumerate(misspec)]
        blocks.append(Table(["observation", "score", "threshold", "assessment", "verdict"], rows,
                            caption="Misspecification: distance of each observation's summary from the "
                                    "simulated summaries; a flagged observation's posterior is not trustworthy"))
        if any(m.get("flagged") for m in misspec):
            blocks.append(Text("At least one observation lies outside what the simulator produces: its "
                               "posterior is an extrapolation. Check the simulator and the prior.", "warn"))
    return blocks


def _loss_figure(rows: list[dict[str, Any]]) -> Any:
    """The training curves of a log, or None for an empty log or one without a training loss."""
    if not rows:
        return None
    try:
        return loss_plot(rows)
    except ValueError:  # no train_loss column: a foreign or damaged log has nothing to draw
        return None


def _training_blocks(layout: RunLayout, fit: dict[str, Any]) -> list[Any]:
    # with several candidate flows the kept one's log (a file of the run directory)
    kept = fit.get("training_log")
    rows = read_jsonl(layout.root / Path(kept).name if kept else layout.training_log)
    blocks: list[Any] = []
    fig = _loss_figure(rows)
    if fig is not None:
        blocks.append(Figure(figure_to_data_uri(fig), "Loss per epoch (lower is better) and learning rate"))
    facts = [[k.replace("_", " "), v if not isinstance(v, dict | list) else json.dumps(v)]
             for k, v in fit.items() if k not in ("config",)]
    if facts:
        blocks.append(Table(["training", "value"], facts))
    if not blocks:
        blocks.append(Text("No training log yet: run innverse fit CONFIG.toml."))
    return blocks


def build_report(run_dir: str | os.PathLike[str]) -> Path:
    """Write ``RUN/report.html`` from the files of a run directory and return its path."""
    layout = RunLayout(Path(run_dir))
    if not layout.root.is_dir():
        raise FileNotFoundError(f"report: run directory {layout.root} does not exist")
    run = read_json(layout.run_json)
    steps = run.get("steps", {})
    names = [str(s) for s in run.get("parameter_names", [])]
    diag = read_json(layout.diagnostics_json)
    verdicts = verdicts_from_diagnostics(diag)
    misspec = steps.get("sample", {}).get("misspecification", []) or []
    for m in misspec:
        verdicts.append(Verdict(f"Observation {m.get('observation')} within simulations",
                                not m.get("flagged", False), f"score {fmt_number(m.get('score'))} vs threshold "
                                f"{fmt_number(m.get('threshold'))}", "posterior"))

    sections = [Section("Posterior", "posterior", _posterior_sections(layout, names, misspec),
                        "Samples of the amortized posterior for each observation.")]
    sections.append(Section("Training", "training", _training_blocks(layout, steps.get("fit", {}))))
    # The posterior and training sections draw their own pair plots (from the sample files, with
    # truth) and loss curves (from the log), so the battery's versions of those are not repeated.
    plots = [(n, p) for n, p in _plot_paths(diag) if _resolve(p, layout)
             and not n.split(".")[-1].startswith(("pair_plot", "training_loss"))]
    groups: dict[str, list[Any]] = {"calibration": [], "recovery": [], "diagnostics": []}
    for name, path in plots:
        key = ("calibration" if any(t in name.lower() for t in CALIBRATION_WORDS) else
               "recovery" if any(t in name.lower() for t in RECOVERY_WORDS) else "diagnostics")
        file = _resolve(path, layout)
        short = name.split(".")[-1]
        label = _CAPTIONS.get(short, short.replace("_", " ").capitalize())
        groups[key].append(Figure(file_to_data_uri(file), label, wide=_aspect(file) > 2.2))
    titles = {"calibration": ("Calibration", "Simulation-based calibration ranks and coverage of credible "
                              "regions over simulated data sets: a calibrated posterior has uniform ranks "
                              "and coverage on the diagonal."),
              "recovery": ("Recovery", "Posterior means against the true parameters of simulated data sets, "
                           "and posterior z-scores against contraction."),
              "diagnostics": ("More diagnostics", "")}
    for key, blocks in groups.items():
        if blocks:
            sections.append(Section(titles[key][0], key, blocks, titles[key][1]))
    if diag:
        sections.append(Section("Diagnostic numbers", "numbers", number_tables(diag, names),
                                "Every number behind the verdicts, per parameter."))
    elif not verdicts:
        sections.append(Section("Diagnostics", "calibration", [Text("Not run yet: innverse check RUN.")]))

    settings = [[k, v if not isinstance(v, dict | list) else json.dumps(v)]
                for k, v in run.get("settings", {}).items()]
    timings = [[name, step.get("seconds", float("nan")), step.get("status", "done")]
               for name, step in steps.items() if isinstance(step, dict)]
    blocks: list[Any] = []
    if settings:
        blocks.append(Table(["setting", "value"], settings))
    if timings:
        blocks.append(Table(["step", "seconds", "status"], timings, caption="Wall time per step"))
    if layout.config.is_file():
        blocks.append(Code(layout.config.read_text(encoding="utf-8"), "config.toml"))
    blocks.append(Table(["version", ""], [[k, v] for k, v in run.get("versions", {}).items()]))
    sections.append(Section("Run settings", "settings", blocks))

    sims = steps.get("simulate", {}).get("simulations")
    stats = [(str(run.get("task", "custom")), "task"),
             (f"{sims:,}" if isinstance(sims, int) else "-", "simulations"),
             (str(steps.get("fit", {}).get("epochs", "-")), "epochs"),
             (f"{sum(s.get('seconds', 0) for s in steps.values() if isinstance(s, dict)):.0f} s",
              "total wall time")]
    created = run.get("created") or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    html_text = render_page(
        title=f"innverse report: {run.get('name', layout.root.name)}",
        subtitle=f"task {run.get('task', 'custom')} · parameters {', '.join(names) or '?'} · created {created}",
        verdicts=verdicts, stats=stats, sections=sections,
        footer=f"innverse {run.get('versions', {}).get('innverse', '')} · {layout.root.resolve()}")
    return atomic_write_text(layout.report, html_text)
