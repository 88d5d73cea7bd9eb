"""Property-based fuzzing of every ``innverse`` command with generated bad configs, arguments,
observation files and damaged run files.

Every run ends with an exit code (0 ok, 1 job failed, 2 bad input) — never a traceback — and
under ``--json`` with exactly one JSON object on stdout; a failure's message names what was
wrong (the config key, the argument, the file), and a failed command writes nothing (no run
directory, no store, no samples file). ``INNVERSE_FUZZ=long`` selects the long profile.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is a test dependency (pip install hypothesis)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from innverse.cli.config import SCHEMA  # noqa: E402
from innverse.cli.tomlwrite import to_toml  # noqa: E402

from .helpers import run_main  # noqa: E402

pytest.importorskip("h5py")

# "long": 400 cases per entry point, the same every run (the CI step); "explore": 400 fresh random ones
LONG = os.environ.get("INNVERSE_FUZZ") in ("long", "explore")
EXPLORE = os.environ.get("INNVERSE_FUZZ") == "explore"


def profile(fast: int) -> settings:
    return settings(max_examples=400 if LONG else fast, deadline=None, derandomize=not EXPLORE, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


def _answer(result: tuple[int, str, str], codes: tuple[int, ...] = (0, 1, 2)) -> dict:
    """The one JSON answer of a ``--json`` run, after checking its exit code and stderr."""
    code, out, err = result
    assert code in codes, (code, out, err)
    assert "Traceback" not in err, err
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    data = json.loads(lines[0])
    assert data["ok"] is (code == 0)
    if code:
        assert data["exit_code"] == code and "\n" not in data["error"]
        assert err.rstrip().endswith(data["error"])
    return data


def _tree(folder: Path) -> set[str]:
    """The files under ``folder`` (an empty folder made to test writability is not a written file)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir()}


# -- fit: generated bad configs ----------------------------------------------------------------------
BAD_VALUES = {
    "integer": [-1, 0, 10**20, 2.5, "ten", True, [1], {"a": 1}, float("inf")],
    "number": [float("nan"), float("inf"), -float("inf"), "x", True, -1.0, [0.1], 0.0, 1.0, 5],
    "string": [1, True, [], {"a": "b"}, "no_such_choice_xyz"],
    "integers": [[0], [-3], "64", [64, "wide"], [10**9], 64, [1.5]],
    "string list": ["a", [1, 2], [True]],
    "boolean": [1, "yes", 0.0, []],
}


@st.composite
def bad_configs(draw) -> tuple[str, str]:
    """A config with a value of the wrong type or out of range at one key (mostly refused by the schema;
    the test skips the few that are valid), and that key."""
    cfg: dict = {"simulator": {"task": "two_moons"}, "simulations": {"count": 100}, "training": {"epochs": 1}}
    section = draw(st.sampled_from([s for s in SCHEMA if s != "simulator"]))
    key = draw(st.sampled_from(sorted(SCHEMA[section])))
    kind = SCHEMA[section][key].type
    pool = BAD_VALUES.get(kind, [1])
    if SCHEMA[section][key].choices:
        pool = [*pool, "no_such_choice_xyz"]
    value = draw(st.sampled_from(pool))
    cfg.setdefault(section, {})[key] = value
    if draw(st.booleans()):  # an unknown key or section too
        cfg.setdefault(draw(st.sampled_from(["training", "flow", "trainig"])), {})["epoch"] = 3
    try:
        text = to_toml(cfg)
    except TypeError:  # a table value: write it as a TOML table
        text = to_toml({s: {k: v for k, v in keys.items() if not isinstance(v, dict)} for s, keys in cfg.items()})
        text += f"\n[{section}.{key}]\na = 1\n"
    return text, f"{section}.{key}"


def _valid(text: str) -> bool:
    """Whether a generated config slipped through as valid (then it would train; skip it)."""
    from innverse.cli.config import parse_config
    from innverse.cli.errors import UsageError

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        parse_config(tomllib.loads(text), "c.toml", Path("."))
    except (UsageError, tomllib.TOMLDecodeError):
        return False
    return True


@profile(25)
@given(config=bad_configs(), garbage=st.sampled_from([None, b"\xff\xfe\x00", b"[simulator\n", b"\x00" * 8]))
def test_fit_with_generated_bad_configs(config, garbage):
    text, key = config
    hypothesis.assume(garbage is not None or not _valid(text))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.toml"
        path.write_bytes(garbage + text.encode() if garbage else text.encode())
        data = _answer(run_main("fit", "c.toml", "--run", "r", "--json", cwd=Path(tmp)), (2,))
        assert "c.toml" in data["error"], data  # names the file ...
        if garbage is None and "epoch =" not in text:
            assert f"'{key}'" in data["error"] or f"[{key}]" in data["error"], (text, data)  # ... and the key
        assert _tree(Path(tmp)) == {"c.toml"}  # nothing written


# -- simulate and demo: generated arguments ------------------------------------------------------------
COUNTS = st.sampled_from(["-5", "0", "1", "30", str(10**12), "1e3", "x", "9" * 25])


@profile(20)
@given(n=COUNTS, batch=st.sampled_from(["0", "-1", "10", str(10**9), "2.5"]),
       workers=st.sampled_from(["0", "1", "-3", str(10**6)]), seed=st.sampled_from(["0", "-1", str(2**64), "7"]),
       task=st.sampled_from(["two_moons", "two_moon", "", "../etc"]), ref=st.sampled_from([None, "oops", "m:", ":f"]))
def test_simulate_with_generated_arguments(n, batch, workers, seed, task, ref):
    source = ["--task", task] if ref is None else ["--simulator", ref, "--prior", "m:p"]
    with tempfile.TemporaryDirectory() as tmp:
        args = ["simulate", *source, "-n", n, "--batch-size", batch, "--workers", workers, "--seed", seed,
                "--out", "s.h5", "--json"]
        data = _answer(run_main(*args, cwd=Path(tmp)), (0, 2))
        if data["ok"]:
            assert data["simulations"] == int(n) and _tree(Path(tmp)) == {"s.h5"}
        else:
            named = ("--simulations", "--batch-size", "--workers", "--seed", "-n", "task", "simulator",
                     "argument", "positive")
            assert any(word in data["error"] for word in named), data
            assert _tree(Path(tmp)) == set()


@profile(15)
@given(sims=st.sampled_from([None, "5", "-1", str(10**10)]), epochs=st.sampled_from([None, "0", "-2", str(10**7)]),
       workers=st.sampled_from(["0", "1", "999999"]), seed=st.sampled_from(["0", "-4", str(2**63)]),
       task=st.sampled_from(["two_moons", "nope"]))
def test_demo_with_generated_bad_arguments(sims, epochs, workers, seed, task):
    hypothesis.assume(task == "nope" or sims not in (None,) or epochs is not None or workers != "1" or seed != "0")
    with tempfile.TemporaryDirectory() as tmp:
        args = ["demo", "--task", task, "--workers", workers, "--seed", seed, "--out", "d", "--json"]
        args += ["--simulations", sims] if sims else []
        args += ["--epochs", epochs] if epochs else []
        data = _answer(run_main(*args, cwd=Path(tmp)), (2,))
        assert any(w in data["error"] for w in ("--simulations", "--epochs", "--workers", "--seed", "task")), data
        assert _tree(Path(tmp)) == set()


# -- sample, check, report on a trained run: generated observation files and damaged files -------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained run of the built-in two-moons task (its own code only)."""
    tmp = tmp_path_factory.mktemp("fuzzrun")
    (tmp / "c.toml").write_text('[simulator]\ntask = "two_moons"\n[simulations]\ncount = 200\nbatch_size = 100\n'
                                '[flow]\ncoupling = "affine"\nblocks = 2\nhidden = [16]\n[training]\nepochs = 1\n')
    code, _, err = run_main("fit", "c.toml", "--run", "run", "-q", cwd=tmp)
    assert code == 0, err
    return tmp / "run"


@st.composite
def observation_files(draw) -> tuple[str, bytes]:
    """(suffix, content): numpy arrays of any shape/dtype/special values, CSV text, or raw bytes."""
    kind = draw(st.sampled_from(["npy", "csv", "bytes"]))
    if kind == "bytes":
        return draw(st.sampled_from([".npy", ".csv", ".txt"])), draw(st.binary(max_size=64))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    values = np.random.default_rng(draw(st.integers(0, 999))).normal(size=shape)
    if values.size and draw(st.booleans()):
        values.flat[0] = draw(st.sampled_from([np.nan, np.inf, 1e300, -1e39]))
    if kind == "csv":
        rows = np.atleast_2d(values if values.ndim < 3 else values.reshape(-1))
        header = "a,b\n" if draw(st.booleans()) else ""
        return ".csv", (header + "\n".join(",".join(f"{v:g}" for v in r) for r in rows)).encode()
    import io

    buf = io.BytesIO()
    dtype = draw(st.sampled_from(["float64", "float32", "int8", "bool", "U3"]))
    with np.errstate(invalid="ignore", over="ignore"):
        np.save(buf, values.astype(dtype) if dtype != "U3" else values.astype(str).astype("U3"))
    return ".npy", buf.getvalue()


@profile(20)
@given(obs=observation_files(), n=st.sampled_from(["5", "0", "-3", str(10**9)]),
       out=st.sampled_from(["o.npz", "o.csv", "o.parquet", "sub/o.npz"]))
def test_sample_with_generated_observation_files(run_dir, obs, n, out):
    suffix, content = obs
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / f"obs{suffix}").write_bytes(content)
        data = _answer(run_main("sample", str(run_dir), "--obs", f"obs{suffix}", "-n", n, "--out", out, "--json",
                                cwd=Path(tmp)), (0, 2))
        if data["ok"]:
            assert out.endswith((".npz", ".csv")) and (Path(tmp) / out).is_file()
            if out.endswith(".npz"):
                with np.load(Path(tmp) / out) as z:
                    assert z["samples"].shape[0] == int(n) and np.isfinite(z["samples"]).all()
        else:
            assert any(w in data["error"] for w in (f"obs{suffix}", "--samples", "--out")), data
            assert _tree(Path(tmp)) == {f"obs{suffix}"}  # no samples file, no folder


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-5, 10**20) | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=3), max_leaves=8)


@profile(20)
@given(damage=st.sampled_from(["bytes", "json", "settings"]), blob=st.binary(max_size=40), value=JSON_VALUES,
       sims=st.sampled_from(["3", "-1", str(10**8), None]))
def test_check_with_damaged_runs_and_bad_budgets(run_dir, damage, blob, value, sims):
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("*.h5", "checkpoints", "diagnostics"))
        info = json.loads((run / "run.json").read_text())
        if damage == "bytes":
            (run / "run.json").write_bytes(blob)
        elif damage == "json":
            (run / "run.json").write_text(json.dumps(value))
        else:
            info["settings"] = {"diagnostics.simulations": value, "diagnostics.samples": value}
            (run / "run.json").write_text(json.dumps(info))
        hypothesis.assume(damage != "settings" or sims is not None or not isinstance(value, int))
        args = ["check", "run", "--json"] + (["--simulations", sims] if sims else [])
        data = _answer(run_main(*args, cwd=Path(tmp)), (1, 2))
        assert any(w in data["error"] for w in ("run.json", "--simulations", "--samples", "run directory")), data
        assert not (run / "diagnostics" / "diagnostics.json").exists()


@profile(10)
@given(diagnostics=st.one_of(st.none(), st.binary(max_size=30), JSON_VALUES),
       samples=st.one_of(st.none(), st.binary(max_size=30), st.tuples(st.integers(0, 3), st.integers(0, 2),
                                                                     st.integers(0, 3))))
def test_report_with_damaged_files(run_dir, diagnostics, samples):
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("*.h5", "checkpoints", "report.html"))
        if diagnostics is not None:
            (run / "diagnostics").mkdir(exist_ok=True)
            path = run / "diagnostics" / "diagnostics.json"
            path.write_bytes(diagnostics) if isinstance(diagnostics, bytes) else path.write_text(json.dumps(diagnostics))
        if samples is not None:
            (run / "samples").mkdir(exist_ok=True)
            path = run / "samples" / "obs.npz"
            if isinstance(samples, bytes):
                path.write_bytes(samples)
            else:
                np.savez(path, samples=np.zeros(samples))
        data = _answer(run_main("report", "run", "--json", cwd=Path(tmp)), (0, 1, 2))
        if data["ok"]:
            assert (run / "report.html").read_text().rstrip().endswith("</html>")
        else:
            assert any(w in data["error"] for w in ("diagnostics.json", "obs.npz", "run.json", "report")), data
            assert not (run / "report.html").exists()
