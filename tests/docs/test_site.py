"""The built documentation site in a real browser, and its internal links.

Headless Chromium (Debian's ``chromium``, driven over the DevTools pipe by
``tests/report/chromium.py``) opens the index page and a tutorial page from disk: every image must
load, nothing may be logged to the console, no request may leave the site, and every link on the
page that points into the site must reach an existing file and anchor. A static pass checks the
links and images of every page of the site the same way.

Needs a built site (``bash scripts/build_docs.sh --fast``): skipped without one, unless
``INNVERSE_DOCS_REQUIRED=1`` (the CI docs step); the browser tests are skipped when chromium is
not installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import html.parser
import json
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from ..report.chromium import CHROMIUM, Browser, assert_loaded_cleanly

SITE = Path(__file__).resolve().parents[2] / "docs" / "_build" / "html"
TUTORIAL = "auto_tutorials/01_flow_by_hand.html"
LINKS_JS = "JSON.stringify(Array.from(document.querySelectorAll('a[href]')).map(a => a.href))"
no_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                 "(apt-get install chromium; .ci/run installs it)")


def built_site() -> Path:
    if not (SITE / "index.html").exists():
        if os.environ.get("INNVERSE_DOCS_REQUIRED") == "1":
            pytest.fail(f"no built site at {SITE}; bash scripts/build_docs.sh --fast builds it")
        pytest.skip(f"the site is not built ({SITE}); bash scripts/build_docs.sh --fast builds it")
    return SITE


class _Anchors(html.parser.HTMLParser):
    """Ids of a page, and the targets of its links and images."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag == "a" and values.get("href"):
            self.targets.append(values["href"] or "")
        if tag == "img" and values.get("src"):
            self.targets.append(values["src"] or "")


_PAGES: dict[Path, _Anchors] = {}


def _parsed(path: Path) -> _Anchors:
    if path not in _PAGES:
        parser = _Anchors()
        parser.feed(path.read_text(errors="replace"))
        _PAGES[path] = parser
    return _PAGES[path]


def broken_internal_links(page: Path, targets: list[str], site: Path) -> list[str]:
    """Links of ``page`` into ``site`` whose file or ``#anchor`` does not exist."""
    broken = []
    for target in targets:
        parts = urlsplit(target)
        if parts.scheme in ("http", "https", "mailto", "data", "javascript"):
            continue
        path = Path(unquote(parts.path)) if parts.scheme == "file" else (page.parent / unquote(parts.path))
        path = path.resolve() if parts.path else page
        if path.is_dir():
            path = path / "index.html"
        if site.resolve() not in path.parents and path != site.resolve():
            broken.append(f"{target} (outside the site)")
        elif not path.exists():
            broken.append(f"{target} (no such file)")
        elif parts.fragment and path.suffix == ".html" and unquote(parts.fragment) not in _parsed(path).ids:
            broken.append(f"{target} (no such anchor)")
    return broken


def check_page(page: Path, site: Path) -> dict:
    """Open ``page`` in Chromium; assert it renders cleanly, offline, with working internal links."""
    with Browser() as browser:
        loaded = browser.load(page.resolve().as_uri())
        links = json.loads(browser.page("Runtime.evaluate", expression=LINKS_JS)["result"]["value"])
    assert_loaded_cleanly(loaded, page.name)
    internal = [u for u in links if u.startswith("file:")]
    assert internal, f"no internal links on {page.name}"
    broken = broken_internal_links(page, internal, site)
    assert not broken, f"broken internal links on {page.name}: {broken}"
    return loaded | {"links": links}


@no_chromium
def test_index_page_renders_in_chromium() -> None:
    site = built_site()
    page = check_page(site / "index.html", site)
    assert page["title"].startswith("innverse")
    assert any(link.endswith("api/index.html") for link in page["links"])


@no_chromium
def test_tutorial_page_renders_in_chromium_with_its_figures() -> None:
    site = built_site()
    page = check_page(site / TUTORIAL, site)
    made = len(re.findall(r'<img [^>]*class\s*=\s*"sphx-glr-(?:single|multi)-img', (site / TUTORIAL).read_text()))
    figures = [i for i in page["images"] if i["width"] > 100]
    assert made >= 2 and len(figures) == made, f"the tutorial made {made} figures, Chromium shows {page['images']}"
    shot = Path(os.environ.get("INNVERSE_SCREENSHOT_DIR", site)) / "tutorial_screenshot.png"
    shot.write_bytes(page["screenshot"])


@no_chromium
def test_the_check_catches_broken_images_and_links(tmp_path: Path) -> None:
    site = built_site()
    bad = site / "_broken_test_page.html"
    bad.write_text('<html><head><title>innverse broken</title></head><body>'
                   '<img src="_images/does_not_exist.png" alt="missing">'
                   '<a href="index.html#no-such-anchor">x</a></body></html>')
    try:
        with pytest.raises(AssertionError, match="broken images"):
            check_page(bad, site)
        bad.write_text('<html><body><a href="index.html#no-such-anchor">x</a>'
                       '<a href="nowhere.html">y</a></body></html>')
        with pytest.raises(AssertionError, match="no such anchor"):
            check_page(bad, site)
    finally:
        bad.unlink()


def test_every_internal_link_and_image_of_the_site_resolves() -> None:
    site = built_site()
    broken = {}
    pages = [p for p in site.rglob("*.html") if "_modules" not in p.parts and p.name != "demo_report.html"]
    assert len(pages) > 20, f"only {len(pages)} pages in {site}"
    for page in pages:
        found = broken_internal_links(page, _parsed(page).targets, site)
        if found:
            broken[str(page.relative_to(site))] = found
    assert not broken, f"broken internal links or images: {json.dumps(broken, indent=1)[:4000]}"


def test_tutorials_and_gallery_were_executed() -> None:
    site = built_site()
    for folder in ("auto_tutorials", "auto_gallery"):
        pages = sorted((site / folder).glob("[0-9][0-9]_*.html"))
        assert pages, f"no executed scripts in {folder}"
        for page in pages:
            text = page.read_text()
            assert re.search(r"Total running time of the script", text), f"{page.name} was not executed"
            assert "sphx-glr-single-img" in text or "sphx-glr-multi-img" in text, f"{page.name} has no figure"
