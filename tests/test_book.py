"""The static book: one page per chapter, working links, no CDN, widget state embedded."""
import json
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_book.py"), "--out", str(out), "--no-assets"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_every_notebook_has_a_page_linked_from_the_index(book):
    index = (book / "index.html").read_text(encoding="utf-8")
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "no chapters yet"
    for nb in notebooks:
        page = book / f"{nb.stem}.html"
        assert page.exists(), f"no page for {nb.name}"
        assert f'href="{page.name}"' in index


def test_local_links_resolve_and_nothing_loads_from_the_network(book):
    for page in book.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        remote = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        assert not remote, f"{page.name} loads {remote[:3]} from the network"
        for target in re.findall(r'href="([^"#:]+\.html)(?:#[^"]*)?"', text):
            assert (book / target).exists(), f"{page.name} links to missing {target}"
        assert "_static/mathjax/tex-svg.js" in text


def test_widget_state_is_embedded_where_a_notebook_stored_it(book):
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        meta = json.loads(nb.read_text(encoding="utf-8"))["metadata"]
        if "widgets" in meta:
            text = (book / f"{nb.stem}.html").read_text(encoding="utf-8")
            assert 'application/vnd.jupyter.widget-state+json' in text, nb.name
            assert "_static/embed-amd.js" in text
