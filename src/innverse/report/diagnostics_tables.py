"""The diagnostics battery's result as report material: a verdict per check and tables of numbers.

Reads the JSON of :func:`innverse.diagnostics.check` (``CheckResult.to_dict()``): each check
(``sbc``, ``coverage``, ``tarp``, ``recovery``, ``misspecification``) has a ``passed`` verdict and
its statistics, per parameter where that applies. Unknown checks with a ``passed`` flag are shown
too, with their first scalar numbers.
"""

from __future__ import annotations

import math
from typing import Any

from .page import Table, Text, Verdict

__all__ = ["CALIBRATION_WORDS", "RECOVERY_WORDS", "fmt_number", "number_tables", "verdicts_from_diagnostics"]

CALIBRATION_WORDS = ("sbc", "rank", "ecdf", "coverage", "tarp", "calibration")
RECOVERY_WORDS = ("recovery", "zscore", "z_score", "contraction", "rmse")


def _scalars(d: dict[str, Any], limit: int = 4) -> list[tuple[str, Any]]:
    out = []
    for k, v in d.items():
        if k in ("passed", "level") or isinstance(v, bool):
            continue
        if isinstance(v, int | float) and math.isfinite(v):
            out.append((k, v))
        elif isinstance(v, list) and v and len(v) <= 6 and all(isinstance(e, int | float) for e in v):
            out.append((k, [round(float(e), 4) for e in v]))
    return out[:limit]


def fmt_number(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _nums(xs: Any) -> str:
    xs = xs if isinstance(xs, list) else [xs]
    return ", ".join("-" if x is None else f"{x:.3g}" for x in xs)


#: check name -> (title, anchor, headline numbers: [(label, path into the entry)])
_KNOWN = {
    "sbc": ("SBC rank uniformity", "calibration",
            [("p", ("p_value",)), ("calibration error", ("calibration_error",))]),
    "coverage": ("Coverage of credible regions", "calibration",
                 [("worst deviation", ("central", "max_deviation")), ("p", ("central", "p_value"))]),
    "tarp": ("TARP coverage", "calibration", [("ATC", ("atc",)), ("p", ("p_value",))]),
    "recovery": ("Recovery (z-scores)", "recovery",
                 [("R²", ("r2",)), ("mean z", ("mean_z",)), ("contraction", ("mean_contraction",))]),
    "learning": ("Learned from the data", "recovery",
                 [("R² posterior mean", ("r2_posterior",)), ("R² regression on x", ("r2_regression",))]),
    "misspecification": ("Observations like the simulations", "posterior",
                         [("flags", ("flags",)), ("set-level p", ("set_test", "p_value")),
                          ("set-level p, data", ("data_test", "p_value"))]),
}


def _dig(entry: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(entry, dict) or key not in entry:
            return None
        entry = entry[key]
    return entry


def verdicts_from_diagnostics(result: dict[str, Any]) -> list[Verdict]:
    """One verdict per check in a diagnostics result (every entry with a ``passed`` flag)."""
    rows = []
    for name, entry in result.items():
        if not (isinstance(entry, dict) and "passed" in entry):
            continue
        passed = entry["passed"] if isinstance(entry["passed"], bool) else None
        if name in _KNOWN:
            title, anchor, picks = _KNOWN[name]
            parts = []
            for label, path in picks:
                value = _dig(entry, path)
                if label == "flags" and isinstance(value, list):
                    parts.append(f"{sum(bool(v) for v in value)} of {len(value)} observations flagged")
                elif value is not None and not isinstance(value, dict):
                    parts.append(f"{label} = {_nums(value)}")
            if entry.get("available") is False:
                passed, parts = None, [str(entry.get("reason", "not available"))]
            detail = "; ".join(parts)
        else:
            title = name.replace("_", " ").capitalize()
            anchor = ("calibration" if any(t in name.lower() for t in CALIBRATION_WORDS) else
                      "recovery" if any(t in name.lower() for t in RECOVERY_WORDS) else "diagnostics")
            detail = ", ".join(f"{k} = {fmt_number(v)}" for k, v in _scalars(entry, 3))
        if entry.get("level") is not None and passed is not None:
            detail = f"{detail} (level {entry['level']})" if detail else f"level {entry['level']}"
        rows.append(Verdict(title, passed, detail, anchor))
    return rows


#: sections of a diagnostics result shown as number tables, and the quantities they list
_NUMBERS = {
    "sbc": ("SBC", ["p_value", "chi2_p_value", "calibration_error", "inside_band"]),
    "coverage.central": ("Central coverage", ["max_deviation", "mean_deviation", "p_value"]),
    "coverage.hpd": ("HPD coverage", ["max_deviation", "mean_deviation", "p_value"]),
    "tarp": ("TARP", ["atc", "max_deviation", "p_value"]),
    "recovery": ("Recovery", ["r2", "rmse", "nrmse", "correlation", "mean_z", "mean_z2",
                              "mean_contraction", "z_p_value", "z2_p_value"]),
    "learning": ("Learning", ["r2_posterior", "r2_regression", "p_value", "p_informative"]),
}


def number_tables(diag: dict[str, Any], names: list[str]) -> list[Any]:
    """One table: a row per (check, quantity), a column per parameter (or one joint column)."""
    d = len(names) or 1
    rows: list[list[Any]] = []
    for path, (title, keys) in _NUMBERS.items():
        entry = _dig(diag, tuple(path.split(".")))
        if not isinstance(entry, dict) or entry.get("available") is False:
            continue
        for key in keys:
            value = entry.get(key)
            if value is None:
                continue
            values = value if isinstance(value, list) else [value]
            if not all(v is None or isinstance(v, int | float) for v in values):
                continue
            cells: list[Any] = [None] * d
            if len(values) == d:
                cells = [None if v is None else float(v) for v in values]
            else:  # a joint quantity: one value, shown in the first column
                cells[0] = None if values[0] is None else float(values[0])
            rows.append([title, key.replace("_", " "), *cells])
    blocks: list[Any] = []
    if rows:
        blocks.append(Table(["check", "quantity", *(names or ["value"])], rows,
                            caption="Per-parameter values; joint quantities (TARP, HPD) in the first column"))
    sim = diag.get("simulation")
    settings = diag.get("settings", {})
    if isinstance(sim, dict):
        blocks.append(Text(f"{sim.get('used')} of {sim.get('requested')} simulated data sets used "
                           f"({sim.get('dropped_nonfinite', 0)} dropped for non-finite output), "
                           f"{settings.get('samples', '?')} posterior samples each, level "
                           f"{settings.get('level', '?')}."))
    return blocks


