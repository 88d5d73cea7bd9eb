"""The structured, JSON-serialisable result of the diagnostics battery."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from .._files import atomic_write

__all__ = ["CheckResult", "json_safe", "write_json"]


def json_safe(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays converted, NaN and ±inf replaced by ``None``."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def write_json(data: Any, path: str | os.PathLike) -> None:
    """Write ``data`` as JSON atomically (temporary file, then ``os.replace``)."""
    atomic_write(path, lambda fh: json.dump(json_safe(data), fh, indent=1, allow_nan=False), mode="w")


@dataclass
class CheckResult:
    """Everything :func:`~innverse.diagnostics.check` measured, with a verdict per check.

    Index it like a dict (``result["sbc"]["passed"]``) or use attributes (``result.sbc``).
    ``to_dict()`` gives plain JSON types (NaN / inf as ``None``); ``summary()`` a text table.

    Attributes:
        settings: the arguments of the run (n, samples, level, seed, shapes, parameter names).
        simulation: simulations requested, used, and dropped for non-finite output.
        sbc: :func:`~innverse.diagnostics.sbc_test` plus the ranks.
        coverage: ``{"central": ..., "hpd": ..., "passed"}`` from
            :func:`~innverse.diagnostics.coverage_test` (``hpd`` needs ``log_prob``).
        tarp: TARP coverage test, with ``atc`` (signed area between curve and diagonal).
        recovery: :func:`~innverse.diagnostics.recovery`.
        learning: :func:`~innverse.diagnostics.learning_test` (did the posterior learn anything?).
        misspecification: per-observation scores, p-values and flags, and the set-level test
            (``{"available": False}`` without observations).
        timing: seconds per stage.
        plots: name -> path of every saved figure.
        passed: every available check passed.
    """

    settings: dict[str, Any]
    simulation: dict[str, Any]
    sbc: dict[str, Any]
    coverage: dict[str, Any]
    tarp: dict[str, Any]
    recovery: dict[str, Any]
    learning: dict[str, Any]
    misspecification: dict[str, Any]
    timing: dict[str, float] = field(default_factory=dict)
    plots: dict[str, str] = field(default_factory=dict)
    passed: bool = False

    def __getitem__(self, key: str) -> Any:
        if key not in {f.name for f in fields(self)}:
            raise KeyError(f"CheckResult has no section {key!r}; sections: {[f.name for f in fields(self)]}")
        return getattr(self, key)

    def keys(self) -> list[str]:
        return [f.name for f in fields(self)]

    def to_dict(self) -> dict[str, Any]:
        return json_safe({f.name: getattr(self, f.name) for f in fields(self)})

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The result as a JSON string; also written atomically to ``path`` when given."""
        if path is not None:
            write_json(self.to_dict(), path)
        return json.dumps(self.to_dict(), allow_nan=False)

    def summary(self) -> str:
        """One line per check: verdict and the headline numbers."""
        def fmt(xs: Any) -> str:
            return ", ".join(f"{x:.3g}" for x in xs)

        names = self.settings.get("parameter_names", [])
        rows = [f"diagnostics at level {self.settings.get('level')}: "
                f"{'PASSED' if self.passed else 'FAILED'}  (parameters: {', '.join(names)})"]
        s = self.sbc
        rows.append(f"  SBC          {_v(s)}  p = [{fmt(s['p_value'])}]  "
                    f"calibration error = [{fmt(s['calibration_error'])}]")
        c = self.coverage["central"]
        rows.append(f"  coverage     {_v(self.coverage)}  central worst deviation = [{fmt(c['max_deviation'])}]"
                    f"  p = [{fmt(c['p_value'])}]")
        h = self.coverage.get("hpd", {})
        if h.get("available", True) and "p_value" in h:
            rows.append(f"  HPD coverage {_v(h)}  worst deviation = {h['max_deviation'][0]:.3g}  "
                        f"p = {h['p_value'][0]:.3g}")
        t = self.tarp
        rows.append(f"  TARP         {_v(t)}  ATC = {t['atc']:.3g}  worst deviation = "
                    f"{t['max_deviation'][0]:.3g}  p = {t['p_value'][0]:.3g}")
        r = self.recovery
        rows.append(f"  recovery     {_v(r)}  mean z = [{fmt(r['mean_z'])}]  mean z² = [{fmt(r['mean_z2'])}]  "
                    f"R² = [{fmt(r['r2'])}]  contraction = [{fmt(r['mean_contraction'])}]")
        g = self.learning
        gain = (f"  log q - log prior = {g['log_prob_gain']:.3g} ± {g['log_prob_gain_se']:.2g} nats"
                if "log_prob_gain" in g else "")
        rows.append(f"  learning     {_v(g)}  R² posterior mean = [{fmt(g['r2_posterior'])}]  "
                    f"R² regression on x = [{fmt(g['r2_regression'])}]  ({', '.join(g['status'])}){gain}")
        m = self.misspecification
        if m.get("available"):
            rows.append(f"  misspecif.   {_v(m)}  {sum(m['flags'])}/{len(m['flags'])} observations outside the simulations"
                        + (f", set-level p = {m['set_test']['p_value']:.3g}" if m.get("set_test") else "")
                        + (f" (summaries), {m['data_test']['p_value']:.3g} (data)"
                           if m.get("data_test", {}).get("available") else ""))
        return "\n".join(rows)


def _v(section: dict[str, Any]) -> str:
    return "pass" if section.get("passed") else "FAIL"
