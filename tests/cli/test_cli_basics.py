"""The command line itself: help for every subcommand, exit codes, JSON errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from innverse.cli import build_parser, main
from innverse.cli.commands import COMMANDS

from .helpers import run_main


def test_help_explains_every_subcommand(tmp_path: Path) -> None:
    code, out, _ = run_main("--help", cwd=tmp_path)
    assert code == 0
    for name in COMMANDS:
        assert name in out
    assert "Exit codes: 0 ok, 1 the job failed, 2 bad usage or input" in out


@pytest.mark.parametrize(("command", "words"), [
    ("demo", ["--task", "--fast", "two moons", "report"]),
    ("simulate", ["--simulator", "MODULE:FUNCTION", "--workers", "resum"]),
    ("fit", ["--resume", "--example-config", "--config-keys"]),
    ("sample", ["--obs", ".npy", ".csv", "ArviZ"]),
    ("check", ["SBC", "coverage", "--strict"]),
    ("report", ["report.html", "offline"]),
])
def test_subcommand_help(command: str, words: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for w in [*words, "--quiet", "--json"]:
        assert w in out, f"{command} --help does not mention {w}"


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert "innverse: error: argument COMMAND: invalid choice: 'frobnicate'" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "none.toml")]) == 2
    assert "config file" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "none")]) == 2
    assert main(["sample", str(tmp_path), "--obs", "x.npy"]) == 2
    assert "is not a run directory (no run.json)" in capsys.readouterr().err


def test_json_mode_reports_errors_as_json(tmp_path: Path) -> None:
    code, out, _ = run_main("check", tmp_path / "missing", "--json", cwd=tmp_path)
    assert code == 2
    assert json.loads(out) == {"ok": False, "error": f"run directory {tmp_path / 'missing'} does not exist",
                               "exit_code": 2}


def test_example_config_and_keys(tmp_path: Path) -> None:
    code, out, _ = run_main("fit", "--example-config", cwd=tmp_path)
    assert code == 0 and "[simulator]" in out and 'task = "two_moons"' in out
    code, out, _ = run_main("fit", "--config-keys", cwd=tmp_path)
    assert code == 0 and "epochs" in out and "an integer" in out


def test_unknown_task_exits_2_and_lists_tasks(tmp_path: Path) -> None:
    code, _, err = run_main("demo", "--task", "two_moon", "--out", tmp_path / "d", cwd=tmp_path)
    assert code == 2 and "unknown task 'two_moon' (did you mean 'two_moons'?)" in err
    assert "gaussian_linear" in err and not (tmp_path / "d").exists()
    code, _, err = run_main("simulate", "--task", "nope", "-n", "10", "--out", tmp_path / "s.h5", cwd=tmp_path)
    assert code == 2 and "unknown task 'nope'" in err and not (tmp_path / "s.h5").exists()
    code, out, _ = run_main("demo", "--list-tasks", cwd=tmp_path)
    assert code == 0 and "two_moons" in out.split()
