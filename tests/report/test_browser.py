"""The report in a real browser: headless Chromium loads it from disk and must render every image.

Console errors and image state need the DevTools protocol; ``chromium.py`` speaks it over
``--remote-debugging-pipe`` (no websocket client, no TCP port). Skipped only when Debian's
``chromium`` is not installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from innverse.report import build_report

from .chromium import CHROMIUM, Browser, assert_loaded_cleanly

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(apt-get install chromium; .ci/run installs it)")


def check_in_browser(report: Path, screenshot: Path) -> dict:
    """Load ``report`` from disk; assert it rendered cleanly; save a full-page screenshot."""
    with Browser() as browser:
        page = browser.load(report.resolve().as_uri())
    screenshot.write_bytes(page["screenshot"])
    assert page["title"].startswith("innverse report")
    assert page["images"], "no images on the page"
    assert_loaded_cleanly(page, "the report")
    assert {i["scheme"] for i in page["images"]} == {"data"}
    assert page["screenshot"][:8] == b"\x89PNG\r\n\x1a\n" and len(page["screenshot"]) > 20_000
    return page


def test_synthetic_report_renders_in_chromium(synthetic_run: Path) -> None:
    report = build_report(synthetic_run)
    out = Path(os.environ.get("INNVERSE_SCREENSHOT_DIR", synthetic_run))
    page = check_in_browser(report, out / "report_synthetic.png")
    assert len(page["images"]) == 6


def test_the_check_catches_a_broken_image(tmp_path: Path, synthetic_run: Path) -> None:
    report = build_report(synthetic_run)
    text = report.read_text().replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1)
    broken = tmp_path / "broken.html"
    broken.write_text(text)
    with pytest.raises(AssertionError, match="broken images"):
        check_in_browser(broken, tmp_path / "broken.png")
