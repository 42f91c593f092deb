"""The static book: one page per chapter, working links, nothing loaded from the network, every widget
a static snapshot (saved picture, disabled controls, a note saying so), the diagrams next to the pages."""
import json
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import build_book  # noqa: E402


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_book.py"), "--out", str(out)],
                            capture_output=True, text=True, timeout=900)
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
    assert "static snapshot" in index


def test_local_links_resolve_and_nothing_loads_from_the_network(book):
    for page in book.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        remote = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        assert not remote, f"{page.name} loads {remote[:3]} from the network"
        assert not re.search(r"@import\s+url\(['\"]?https?:", text), f"{page.name} imports remote CSS"
        for target in re.findall(r'href="([^"#:]+\.html)(?:#[^"]*)?"', text):
            assert (book / target).exists(), f"{page.name} links to missing {target}"
        for target in re.findall(r'<(?:script|img)[^>]+src="([^"#:]+)"', text) + \
                re.findall(r'<link[^>]+href="([^"#:]+\.css)"', text):
            assert (book / target).is_file(), f"{page.name} loads missing {target}"
        assert "_static/katex/katex.min.js" in text and "_static/katex/contrib/auto-render.min.js" in text
        assert "mathjax" not in text.lower() and "require.js" not in text and "embed-amd" not in text


def test_katex_css_refers_only_to_vendored_fonts(book):
    css = (book / "_static" / "katex" / "katex.min.css").read_text(encoding="utf-8")
    fonts = re.findall(r"url\(([^)]+)\)", css)
    assert fonts and all((book / "_static" / "katex" / f).is_file() for f in fonts)
    assert (ROOT / "tools" / "book_assets" / "katex" / "LICENSE").read_text().startswith("The MIT License")


def test_every_widget_is_a_static_snapshot_with_disabled_controls(book):
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        raw = json.loads(nb.read_text(encoding="utf-8"))
        views = sum("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                    for c in raw["cells"] for o in c.get("outputs", []))
        text = (book / f"{nb.stem}.html").read_text(encoding="utf-8")
        assert text.count('class="static-widget"') == views, nb.name
        assert "widget-view+json" not in text and "widget-state+json" not in text, nb.name
        if views:
            assert text.count(build_book.SNAPSHOT_NOTE) == views
            assert 'src="data:image/png;base64,' in text and "_static/widgets.css" in text
            for control in re.findall(r"<(?:input|select|button)\b[^>]*>", text.split('class="static-widget"', 1)[1]):
                if "jp-" not in control:                    # JupyterLab's own page chrome is not a widget
                    assert "disabled" in control, f"{nb.name}: enabled control {control}"


def test_static_widget_renderer_draws_each_kind_of_saved_model():
    state = {"state": {
        "box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_s", "IPY_MODEL_d", "IPY_MODEL_i",
                                                                  "IPY_MODEL_t", "IPY_MODEL_b", "IPY_MODEL_x"]}},
        "s": {"model_name": "FloatSliderModel", "state": {"description": "rate", "min": 0.0, "max": 1.0,
                                                          "value": 0.25, "step": 0.05, "readout_format": ".2f",
                                                          "style": "IPY_MODEL_st"}},
        "st": {"model_name": "SliderStyleModel", "state": {"description_width": "initial"}},
        "d": {"model_name": "DropdownModel", "state": {"description": "kind", "_options_labels": ["a", "b"],
                                                       "index": 1}},
        "i": {"model_name": "ImageModel", "state": {"format": "png", "width": "400"},
              "buffers": [{"path": ["value"], "encoding": "base64", "data": "iVBORw0K"}]},
        "t": {"model_name": "ToggleButtonsModel", "state": {"_options_labels": ["i", "f"], "index": 1}},
        "b": {"model_name": "ButtonModel", "state": {"description": "Train"}},
        "x": {"model_name": "SomethingNewModel", "state": {}},
    }}
    out = build_book.StaticWidgets(state).snapshot("box")
    assert out.startswith('<div class="static-widget">') and build_book.SNAPSHOT_NOTE in out
    assert '<span class="sw-label">rate</span><input type="range" min="0.0" max="1.0" step="0.05" value="0.25" disabled>' in out
    assert '<span class="sw-readout">0.25</span>' in out
    assert "<option selected>b</option>" in out and "<select disabled>" in out
    assert 'width="400"' in out and 'src="data:image/png;base64,iVBORw0K"' in out
    assert '<button disabled class="sw-on">f</button>' in out and '<button class="sw-button" disabled>Train</button>' in out
    assert "SomethingNewModel: not shown in the static book" in out


def test_diagrams_are_copied_next_to_the_pages(book):
    figures = sorted(p.name for p in (ROOT / "notebooks" / "figures").glob("*.svg"))
    assert figures and sorted(p.name for p in (book / "figures").glob("*.svg")) == figures
    linked = set()
    for page in book.glob("*.html"):
        linked |= set(re.findall(r'<img[^>]+src="figures/([^"]+\.svg)"', page.read_text(encoding="utf-8")))
    assert linked == set(figures)
