"""The static book as a reader sees it: every page opened from disk in headless Chromium.

Checks what only a browser can: KaTeX typesets every formula (no ``.katex-error``, no raw ``$$`` left),
every image (diagrams, widget snapshots) loads, the widget snapshots' labels are in a sans-serif font,
their controls are disabled, and no page requests anything from the network.
"""
from __future__ import annotations

import pathlib
import sys

import pytest

from test_widgets_in_browser import CHROMIUM, browser  # noqa: F401  (browser: the fixture)

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from test_book import book  # noqa: E402,F401  (the fixture: the book built into a temporary folder)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not pathlib.Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]


PAGES = ["index", "glossary", "errata"] + [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_offline_with_math_images_and_snapshots(book, browser, name):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((book / f"{name}.html").resolve().as_uri(), wait_until="load")
    page.wait_for_function("() => document.readyState === 'complete'")
    page.wait_for_timeout(300)
    remote = [u for u in requests if not u.startswith(("file:", "data:"))]
    assert not remote, f"{name}.html requested {remote[:3]}"
    assert not errors, f"{name}.html: {errors[:3]}"
    report = page.evaluate("""() => {
        const text = document.body.innerText;
        const imgs = [...document.images];
        const labels = [...document.querySelectorAll('.static-widget .sw-label, .static-widget-note')];
        const controls = [...document.querySelectorAll('.static-widget input, .static-widget select, .static-widget button')];
        return {
            katex: document.querySelectorAll('.katex').length,
            katexErrors: [...document.querySelectorAll('.katex-error')].map(e => e.textContent).slice(0, 3),
            rawDisplayMath: (text.match(/\\$\\$/g) || []).length,
            brokenImages: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80)),
            snapshots: document.querySelectorAll('.static-widget').length,
            labelFonts: [...new Set(labels.map(l => getComputedStyle(l).fontFamily))],
            enabledControls: controls.filter(c => !c.disabled).length,
        };
    }""")
    page.close()
    assert not report["katexErrors"], f"{name}.html: KaTeX could not typeset {report['katexErrors']}"
    assert report["rawDisplayMath"] == 0, f"{name}.html: $$ left untypeset"
    assert not report["brokenImages"], f"{name}.html: images not loaded {report['brokenImages']}"
    if name[:2].isdigit():
        assert report["katex"] > 0, f"{name}.html: no formula typeset"
    for family in report["labelFonts"]:
        first = family.split(",")[0].strip().strip('"').lower()
        assert "serif" not in first or first.startswith("sans"), f"{name}.html: widget labels in {family}"
        assert family.rstrip().endswith("sans-serif"), family
    assert report["enabledControls"] == 0, f"{name}.html: a static snapshot has live-looking controls"
