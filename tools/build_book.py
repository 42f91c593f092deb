"""Build the static HTML book: every chapter, an index, the glossary and the errata, readable offline.

    python tools/build_book.py [--out build/book]

Needs only the course's environment (nbconvert, mistune) and the files in this repository: no
network, no npm, nothing downloaded. (``unshare -n make book`` builds it with the network cut.)

Each notebook in ``notebooks/`` is converted as committed (executed, with its outputs). Links between
chapters (``03_x.ipynb#Heading``) become links between pages, and the diagrams
(``notebooks/figures/*.svg``) are copied next to the pages.

**Widgets** need a running kernel to move, which a static page does not have. So the book shows each
widget as a **static snapshot**: its saved state (the figure the notebook was left with, the controls'
values, the readout), drawn in plain HTML with every control disabled, under a note that says so and
how to get the live widget (``make lab``). No widget JavaScript is loaded. The snapshot's look
(sans-serif labels, the controls' sizes) comes from ``tools/book_assets/widgets.css``.

**Formulas** are typeset in the browser by KaTeX, vendored in ``tools/book_assets/katex/`` (MIT
licence; version, source and sizes in ``tools/book_assets/README.md``).
"""
from __future__ import annotations

import argparse
import base64
import copy
import html
import json
import math
import pathlib
import re
import shutil
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
ASSETS = ROOT / "tools" / "book_assets"
FIGURES = ROOT / "notebooks" / "figures"
sys.path.insert(0, str(ROOT / "tools"))
from update_readme import CHAPTERS  # noqa: E402

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

MATH = """<link rel="stylesheet" href="_static/katex/katex.min.css">
<link rel="stylesheet" href="_static/widgets.css">
<script defer src="_static/katex/katex.min.js"></script>
<script defer src="_static/katex/contrib/auto-render.min.js"></script>
<script>
// Typeset the notebook Markdown's $...$ and $$...$$ with KaTeX (deferred scripts run before this event).
document.addEventListener("DOMContentLoaded", function () {
  renderMathInElement(document.body, {
    delimiters: [{left: "$$", right: "$$", display: true}, {left: "\\\\[", right: "\\\\]", display: true},
                 {left: "$", right: "$", display: false}, {left: "\\\\(", right: "\\\\)", display: false}],
    ignoredTags: ["script", "noscript", "style", "textarea", "pre", "code", "option", "select"],
    throwOnError: false, strict: false});
});
</script>"""

SNAPSHOT_NOTE = ("Static snapshot of an interactive widget, as the notebook was saved: its controls are "
                 "disabled here. Run the notebook in JupyterLab (<code>make lab</code>) to move them.")


# ------------------------------------------------------------------------------ static widgets
def _ref(value):
    """The model id in an ``IPY_MODEL_<id>`` reference, or None."""
    return value[len("IPY_MODEL_"):] if isinstance(value, str) and value.startswith("IPY_MODEL_") else None


class StaticWidgets:
    """Draws saved ipywidgets models as plain, disabled HTML (see the module docstring)."""

    def __init__(self, state: dict):
        self.models = state.get("state", {})

    def model(self, model_id):
        m = self.models.get(model_id)
        return (m["model_name"], m.get("state", {}), m.get("buffers", [])) if m else (None, {}, [])

    def _layout_css(self, state) -> str:
        _, layout, _ = self.model(_ref(state.get("layout")))
        css = []
        for key in ("width", "max_width", "height", "flex_flow", "grid_template_columns", "justify_content",
                    "align_items", "margin", "padding"):
            value = layout.get(key)
            if value not in (None, "", "None"):
                css.append(f"{key.replace('_', '-')}: {value}")
        return "; ".join(css)

    def _label(self, state) -> str:
        text = state.get("description") or ""
        if not text:
            return ""
        _, style, _ = self.model(_ref(state.get("style")))
        width = style.get("description_width") or ""
        css = f' style="width: {html.escape(width)}"' if width and width != "initial" else ""
        return f'<span class="sw-label"{css}>{html.escape(text)}</span>'

    def render(self, model_id) -> str:
        name, state, buffers = self.model(model_id)
        if name is None:
            return '<span class="sw-missing">(widget state not saved)</span>'
        layout = self._layout_css(state)
        style = f' style="{html.escape(layout)}"' if layout else ""
        if name in ("VBoxModel", "HBoxModel", "BoxModel", "GridBoxModel"):
            kind = {"VBoxModel": "sw-vbox", "HBoxModel": "sw-hbox", "BoxModel": "sw-hbox",
                    "GridBoxModel": "sw-grid"}[name]
            children = "".join(self.render(_ref(c)) for c in state.get("children", []))
            return f'<div class="{kind}"{style}>{children}</div>'
        if name == "ImageModel":
            data = next((b["data"] for b in buffers if b.get("path") == ["value"]), "")
            fmt = html.escape(state.get("format", "png"))
            width = state.get("width") or ""
            attr = f' width="{html.escape(width)}"' if width else ""
            return (f'<img class="sw-image" alt="widget figure (saved state)"{attr}{style} '
                    f'src="data:image/{fmt};base64,{data}">')
        if name in ("HTMLModel", "HTMLMathModel", "LabelModel"):
            value = state.get("value", "")
            body = value if name != "LabelModel" else html.escape(value)
            return f'<div class="sw-html"{style}>{self._label(state)}{body}</div>'
        label = self._label(state)
        if name.endswith("SliderModel"):
            return f'<div class="sw-control"{style}>{label}{self._slider(name, state)}</div>'
        if name in ("DropdownModel", "SelectModel", "SelectMultipleModel"):
            labels = state.get("_options_labels", [])
            index = state.get("index")
            chosen = set(index if isinstance(index, list) else [index])
            multiple = " multiple" if name == "SelectMultipleModel" else ""
            size = f' size="{int(state.get("rows") or len(labels))}"' if multiple else ""
            options = "".join(f'<option{" selected" if i in chosen else ""}>{html.escape(str(o))}</option>'
                              for i, o in enumerate(labels))
            return f'<div class="sw-control"{style}>{label}<select disabled{multiple}{size}>{options}</select></div>'
        if name in ("ToggleButtonsModel", "RadioButtonsModel"):
            labels = state.get("_options_labels", [])
            buttons = "".join(f'<button disabled class="{"sw-on" if i == state.get("index") else ""}">'
                              f'{html.escape(str(o))}</button>' for i, o in enumerate(labels))
            return f'<div class="sw-control"{style}>{label}<span class="sw-toggles">{buttons}</span></div>'
        if name in ("ButtonModel", "ToggleButtonModel"):
            return f'<button class="sw-button" disabled{style}>{html.escape(state.get("description", ""))}</button>'
        if name in ("FloatTextModel", "IntTextModel", "BoundedFloatTextModel", "BoundedIntTextModel", "TextModel"):
            value = html.escape(str(state.get("value", "")))
            kind = "text" if name == "TextModel" else "number"
            return f'<div class="sw-control"{style}>{label}<input type="{kind}" value="{value}" disabled></div>'
        if name in ("CheckboxModel",):
            checked = " checked" if state.get("value") else ""
            return f'<div class="sw-control"{style}><input type="checkbox" disabled{checked}>{label}</div>'
        if name in ("FloatProgressModel", "IntProgressModel"):
            lo, hi, v = state.get("min", 0), state.get("max", 100), state.get("value", 0)
            return (f'<div class="sw-control"{style}>{label}<progress max="{hi - lo}" value="{v - lo}">'
                    f'</progress></div>')
        if name == "OutputModel":
            texts = [html.escape("".join(o.get("text", "")) if "text" in o
                                 else str(o.get("data", {}).get("text/plain", ""))) for o in state.get("outputs", [])]
            return f'<pre class="sw-output">{"".join(texts)}</pre>' if any(texts) else ""
        return f'<span class="sw-missing">({html.escape(name)}: not shown in the static book)</span>'

    def _slider(self, name, state) -> str:
        if name == "SelectionSliderModel":
            labels = state.get("_options_labels", [])
            index = state.get("index", 0)
            lo, hi, value, readout = 0, max(len(labels) - 1, 0), index, labels[index] if labels else ""
        else:
            lo, hi, value = state.get("min", 0), state.get("max", 100), state.get("value", 0)
            fmt = state.get("readout_format") or (".2f" if "Float" in name else "d")
            if name == "FloatLogSliderModel":
                readout, value = format(value, fmt), math.log(value, state.get("base", 10))
            else:
                try:
                    readout = format(value, fmt)
                except (TypeError, ValueError):
                    readout = str(value)
        step = state.get("step") or "any"
        return (f'<input type="range" min="{lo}" max="{hi}" step="{step}" value="{value}" disabled>'
                f'<span class="sw-readout">{html.escape(str(readout))}</span>')

    def snapshot(self, model_id) -> str:
        return (f'<div class="static-widget"><p class="static-widget-note">{SNAPSHOT_NOTE}</p>'
                f'{self.render(model_id)}</div>')


def static_notebook(nb):
    """A copy of ``nb`` in which every widget view is a static snapshot (text/html) and no widget state
    is left for nbconvert to embed (so no widget JavaScript is loaded)."""
    nb = copy.deepcopy(nb)
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {})
    widgets = StaticWidgets(state)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                view = data.pop(WIDGET_VIEW)
                data.pop("text/plain", None)
                data["text/html"] = widgets.snapshot(view.get("model_id"))
    return nb


# ------------------------------------------------------------------------------ pages
def copy_assets(out: pathlib.Path) -> int:
    """Copy the vendored KaTeX, the widget CSS and the diagrams next to the pages; returns bytes copied."""
    static = out / "_static"
    if static.exists():
        shutil.rmtree(static)
    shutil.copytree(ASSETS / "katex", static / "katex")
    shutil.copy(ASSETS / "widgets.css", static / "widgets.css")
    figures = out / "figures"
    if figures.exists():
        shutil.rmtree(figures)
    shutil.copytree(FIGURES, figures)
    return sum(p.stat().st_size for p in list(static.rglob("*")) + list(figures.rglob("*")) if p.is_file())


def _exporter():
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input_prompt = False
    return exporter


_MATHJAX_BLOCK = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
_MERMAID_BLOCK = re.compile(r"<script type=\"module\">\s*document\.addEventListener\(\"DOMContentLoaded\".*?mermaid.*?</script>", re.S)
_REMOTE_SCRIPT = re.compile(r"<script[^>]+src=\"https?://[^\"]+\"[^>]*>\s*</script>", re.S)
_NB_LINK = re.compile(r'href="(?:\.\./notebooks/|notebooks/|\./)?(\d\d_[a-z_]+)\.ipynb(#[^"]*)?"')
_REPO_LINK = re.compile(r'href="\.\./(exercises|solutions|course_lib|docs)/')
_NAV = ('<nav class="book-nav"><a href="index.html">Contents</a> · <a href="glossary.html">Glossary</a> · '
        '<a href="errata.html">Errata</a></nav>')


def _postprocess(body: str, title: str) -> str:
    body, n = _MATHJAX_BLOCK.subn(lambda _m: MATH, body)
    if n == 0:  # template changed: keep pages working, without a CDN
        body = body.replace("</head>", MATH + "\n</head>", 1)
    body = _MERMAID_BLOCK.sub("", body)
    body = _REMOTE_SCRIPT.sub("", body)
    body = _NB_LINK.sub(lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', body)
    body = _REPO_LINK.sub(lambda m: f'href="../../{m.group(1)}/', body)
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + _NAV, body, count=1)
    body = re.sub(r"<title>.*?</title>", f"<title>{html.escape(title)}</title>", body, count=1, flags=re.S)
    return body


def _page(title: str, inner_html: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.5}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}</style>
{MATH}
</head><body>{_NAV}
{inner_html}
</body></html>
"""


def _markdown_page(md_path: pathlib.Path, title: str) -> str:
    from mistune import create_markdown

    text = md_path.read_text(encoding="utf-8") if md_path.exists() else f"# {title}\n\n*(not written yet)*\n"
    rendered = create_markdown(plugins=["table"])(text)
    rendered = _NB_LINK.sub(lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', rendered)
    rendered = _REPO_LINK.sub(lambda m: f'href="../../{m.group(1)}/', rendered)
    return _page(title, rendered)


def build(out: pathlib.Path) -> dict:
    start = time.perf_counter()
    import nbformat

    out.mkdir(parents=True, exist_ok=True)
    asset_bytes = copy_assets(out)
    exporter = _exporter()
    rows, pages, snapshots = [], [], 0
    for num, (slug, title) in CHAPTERS.items():
        if num == "16":                                       # chapters 16-18 go past the source articles
            rows.append("<tr><td></td><td><em>Beyond the articles</em></td></tr>")
        nb_path = ROOT / "notebooks" / f"{num}_{slug}.ipynb"
        if not nb_path.exists():
            rows.append(f"<tr><td>{num}</td><td>{html.escape(title)} <em>(coming)</em></td></tr>")
            continue
        nb = static_notebook(nbformat.read(nb_path, as_version=4))
        snapshots += sum(json.dumps(c.get("outputs", [])).count('class=\\"static-widget\\"') for c in nb.cells)
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": f"{num} {title}"}})
        page = out / f"{num}_{slug}.html"
        page.write_text(_postprocess(body, f"{num} · {title}"), encoding="utf-8")
        pages.append(page.name)
        rows.append(f'<tr><td>{num}</td><td><a href="{page.name}">{html.escape(title)}</a></td></tr>')
    index = _page("Deep learning from scratch, interactively",
                  "<h1>Deep learning from scratch, interactively</h1>"
                  "<p>The course's chapters, as committed (executed, with their outputs and diagrams). "
                  "Every widget appears as a <b>static snapshot</b> of the state it was saved in, with its "
                  "controls disabled; run <code>make lab</code> to use them.</p>"
                  "<table><tr><th>#</th><th>chapter</th></tr>" + "".join(rows) + "</table>")
    (out / "index.html").write_text(index, encoding="utf-8")
    (out / "glossary.html").write_text(_markdown_page(ROOT / "docs" / "glossary.md", "Glossary"), encoding="utf-8")
    (out / "errata.html").write_text(_markdown_page(ROOT / "docs" / "errata.md", "Errata"), encoding="utf-8")
    return {"pages": pages, "snapshots": snapshots, "asset_bytes": asset_bytes,
            "seconds": time.perf_counter() - start}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "build" / "book")
    args = parser.parse_args(argv)
    report = build(args.out)
    print(f"built {len(report['pages'])} chapter pages + index, glossary, errata in {args.out} "
          f"({report['snapshots']} widget snapshots, {report['asset_bytes'] / 1e6:.1f} MB of KaTeX, CSS and "
          f"diagrams, {report['seconds']:.1f} s); open {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
