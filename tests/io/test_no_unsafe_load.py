"""No code path in the repository calls torch.load without weights_only=True, or unpickles files."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("src", "tests", "benchmarks", "examples", "scripts")
CALL = re.compile(r"\btorch\s*\.\s*(?:serialization\s*\.\s*)?load\s*\(")
PICKLE = re.compile(r"\b(?:pickle|cloudpickle|dill|joblib)\s*\.\s*loads?\s*\(")


def _arguments(text: str, start: int) -> str:
    """The text of a call's argument list, from its opening parenthesis to the matching one."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i + 1]
    return text[start:]


def _python_files() -> list[Path]:
    return [p for folder in FOLDERS if (ROOT / folder).is_dir() for p in (ROOT / folder).rglob("*.py")]


def test_every_torch_load_sets_weights_only_true() -> None:
    files = _python_files()
    assert any(p.name == "saving.py" for p in files), "the scan found the wrong tree"
    offenders = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        for m in CALL.finditer(text):
            args = _arguments(text, m.end() - 1)
            if not re.search(r"weights_only\s*=\s*True", args):
                line = text.count("\n", 0, m.start()) + 1
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {args[:80]}")
    assert not offenders, "torch.load without weights_only=True:\n" + "\n".join(offenders)


def test_library_code_never_unpickles() -> None:
    offenders = []
    for path in (ROOT / "src").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for m in PICKLE.finditer(text):
            offenders.append(f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}")
    assert not offenders, "unpickling in library code:\n" + "\n".join(offenders)


def test_the_scanner_catches_unsafe_calls() -> None:
    call = "torch" + ".load("  # split so this file does not trip its own scan
    bad = f"x = {call}f, map_location='cpu')\ny = {call}\n  g, weights_only=True)\n"
    found = [_arguments(bad, m.end() - 1) for m in CALL.finditer(bad)]
    assert [bool(re.search(r"weights_only\s*=\s*True", a)) for a in found] == [False, True]
    assert PICKLE.search("obj = pickle.loads(blob)") and not PICKLE.search("pickle.dumps(x)")
