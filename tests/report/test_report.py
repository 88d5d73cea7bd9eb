"""The HTML report: self-contained, complete, escaped, with the verdicts at the top."""

from __future__ import annotations

import base64
import re
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest

from innverse.report import Figure, Section, Text, Verdict, build_report, render_page


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def _parse(text: str) -> list[tuple[str, dict[str, str]]]:
    p = _Collect()
    p.feed(text)
    return p.tags


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_report_is_self_contained_and_complete(synthetic_run: Path) -> None:
    path = build_report(synthetic_run)
    assert path == synthetic_run / "report.html"
    text = path.read_text()
    tags = _parse(text)
    assert not [t for t, _ in tags if t in ("script", "link", "iframe", "object", "embed")]
    links = [a[k] for _, a in tags for k in ("src", "href") if k in a]
    assert links and all(u.startswith(("#", "data:image/")) for u in links), "external reference"
    assert "@import" not in text and "url(" not in text  # no fonts or stylesheets fetched by CSS
    images = [a["src"] for t, a in tags if t == "img"]
    # 2 posterior pair plots + training curves + SBC, coverage, recovery (not the battery's pair plot)
    assert len(images) == 6
    for src in images:
        assert src.startswith("data:image/png;base64,")
        w, h = _png_size(base64.b64decode(src.split(",", 1)[1]))
        assert w > 150 and h > 100
    for heading in ("Summary", "Posterior", "Training", "Calibration", "Recovery", "Run settings"):
        assert f">{heading}</h2>" in text


def test_summary_table_shows_each_verdict(synthetic_run: Path) -> None:
    text = build_report(synthetic_run).read_text()
    summary = text.split('<section id="summary">')[1].split("</section>")[0]
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td>", summary)
    verdicts = {re.sub("<.*?>", "", check): "PASS" in badge for check, badge in rows}
    assert verdicts == {"SBC rank uniformity": True, "Coverage of credible regions": False,
                        "TARP coverage": True, "Recovery (z-scores)": True,
                        "Observations like the simulations": False,  # N/A badge: no observations given
                        "Observation 0 within simulations": True, "Observation 1 within simulations": False}
    assert "N/A" in summary and "no observations given" in summary
    assert "2 of 6 checks failed" in summary
    assert "worst deviation = 0.21, 0.05; p = 0.001, 0.6" in summary


def test_user_text_is_escaped(synthetic_run: Path) -> None:
    text = build_report(synthetic_run).read_text()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_posterior_table_numbers(synthetic_run: Path) -> None:
    text = build_report(synthetic_run).read_text()
    # observation 0's theta_1 has mean 0.3 and sd 0.1 (500 draws): the table shows both, rounded
    block = text.split("Posterior summary, observation 0")[1].split("</table>")[0]
    first = re.findall(r'<td class="num">([-0-9.e]+)</td>', block)[:2]
    assert abs(float(first[0]) - 0.3) < 0.02 and abs(float(first[1]) - 0.1) < 0.01


def test_report_of_an_empty_run_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    text = build_report(tmp_path / "r").read_text()
    assert "innverse sample RUN" in text and "innverse fit CONFIG.toml" in text
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_report(tmp_path / "nope")


def test_page_refuses_linked_figures() -> None:
    with pytest.raises(ValueError, match="data URI"):
        render_page("t", "s", [Verdict("x", True)], [],
                    [Section("S", "s", [Figure("plots/a.png", "linked")])])
    page = render_page("t", "s", [], [], [Section("S", "s", [Text("hi", "warn")])])
    assert "No diagnostics have been run yet" in page and 'class="callout warn"' in page


def test_training_curves_come_from_the_kept_candidates_log(synthetic_run: Path) -> None:
    """With several candidate flows, run.json names the kept one's log; the report draws that one."""
    import json

    run = json.loads((synthetic_run / "run.json").read_text())
    run.setdefault("steps", {}).setdefault("fit", {})["training_log"] = "training_log.candidate1.jsonl"
    (synthetic_run / "run.json").write_text(json.dumps(run))
    kept = synthetic_run / "training_log.candidate1.jsonl"
    (synthetic_run / "training_log.jsonl").rename(kept)
    text = build_report(synthetic_run).read_text()
    assert len([t for t, _ in _parse(text) if t == "img"]) == 6           # the curves are there
    kept.unlink()
    text = build_report(synthetic_run).read_text()
    assert len([t for t, _ in _parse(text) if t == "img"]) == 5           # and come from that file


def test_a_log_without_losses_and_samples_without_reference(synthetic_run: Path) -> None:
    """A log without a training loss draws no curves; samples without a reference say only what is drawn."""
    import json

    import numpy as np

    (synthetic_run / "training_log.jsonl").write_text(json.dumps({"epoch": 0, "accuracy": 0.5}) + "\n")
    file = synthetic_run / "samples" / "task_observations.npz"
    with np.load(file) as z:
        kept = {k: z[k] for k in z.files if k != "reference"}
    np.savez(file, **kept)
    text = build_report(synthetic_run).read_text()
    assert len([t for t, _ in _parse(text) if t == "img"]) == 5           # 2 pair plots, SBC, coverage, recovery
    assert "observation 0: 500 samples; red: true parameters</figcaption>" in text
    assert "reference posterior" not in text
