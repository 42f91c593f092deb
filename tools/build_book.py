"""Build the static HTML book: every chapter, an index, the glossary and the errata, readable offline.

    python tools/build_book.py [--out build/book] [--no-assets]

Each notebook in ``notebooks/`` is converted as committed (executed, with outputs and the widgets'
state that ``tools/run_notebooks.py`` stores), so the widgets render as they were left: their figure,
sliders and readouts. Links between chapters (``03_x.ipynb#Heading``) become links between pages.

No page refers to a CDN: the three scripts a page needs (require.js, the Jupyter widgets HTML
manager, MathJax 3) are copied into ``_static/`` from their npm packages, fetched once with
``npm pack`` at the exact versions below into ``.cache/book-assets`` and checked against their
SHA-256. That is the only download, at build time, never when a page is read. ``--no-assets`` skips
it (pages then show widgets and formulas only where the assets already are).
"""
from __future__ import annotations

import argparse
import hashlib
import html
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import time


ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from update_readme import CHAPTERS  # noqa: E402

CACHE = ROOT / ".cache" / "book-assets"
#: npm package -> (sha256 of the tarball, {path in package: path under _static})
ASSETS = {
    "requirejs@2.3.7": ("31f3330c978fb28684622fe71165dc946432cf0210b2ea8a1ca0233e70f2737d",
                        {"require.js": "require.js"}),
    "@jupyter-widgets/html-manager@1.0.15": ("2b9d65cb7913e1c7d671757a10008b32c9c2448d4429513371e55c07d6107638",
                                             {"dist/embed-amd.js": "embed-amd.js"}),
    "mathjax@3.2.2": ("1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09",
                      {"es5/tex-svg.js": "mathjax/tex-svg.js"}),
}

MATHJAX_CONFIG = """<script>
// MathJax 3, configured for notebook Markdown ($...$ and $$...$$). The widgets' HTML manager still
// calls MathJax 2's MathJax.Hub.Queue to typeset labels: a small shim forwards it to MathJax 3.
(function () {
  var hub = {Queue: function () { if (window.MathJax && window.MathJax.typesetPromise) { window.MathJax.typesetPromise(); } }};
  window.MathJax = {
    tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']], processEscapes: true},
    svg: {fontCache: 'global'},
    startup: {ready: function () { window.MathJax.startup.defaultReady(); window.MathJax.Hub = hub; }},
    Hub: hub
  };
})();
</script>
<script src="_static/mathjax/tex-svg.js" id="MathJax-script" async></script>"""


def fetch_assets(static: pathlib.Path) -> list[str]:
    """Copy the pinned JS assets into ``static``; return what could not be had (with why)."""
    missing = []
    CACHE.mkdir(parents=True, exist_ok=True)
    for spec, (digest, files) in ASSETS.items():
        name = spec.rsplit("@", 1)[0].lstrip("@").replace("/", "-")
        tarballs = sorted(CACHE.glob(f"{name}-{spec.rsplit('@', 1)[1]}.tgz"))
        if not tarballs:
            if shutil.which("npm") is None:
                missing.append(f"{spec}: not cached and npm is not installed")
                continue
            result = subprocess.run(["npm", "pack", "--silent", spec], cwd=CACHE, capture_output=True, text=True)
            if result.returncode != 0:
                missing.append(f"{spec}: npm pack failed: {result.stderr.strip()[:200]}")
                continue
            tarballs = sorted(CACHE.glob(f"{name}-{spec.rsplit('@', 1)[1]}.tgz"))
        tarball = tarballs[0]
        sha = hashlib.sha256(tarball.read_bytes()).hexdigest()
        if digest and sha != digest:
            missing.append(f"{spec}: checksum mismatch ({sha})")
            continue
        with tarfile.open(tarball) as tar:
            for inner, target in files.items():
                member = tar.extractfile(f"package/{inner}")
                dest = static / target
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(member.read())
    return missing


def _exporter():
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.require_js_url = "_static/require.js"
    exporter.widget_renderer_url = "_static/embed-amd.js"
    exporter.mathjax_url = "_static/mathjax/tex-svg.js"
    exporter.exclude_input_prompt = False
    return exporter


_MATHJAX_BLOCK = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
_MERMAID_BLOCK = re.compile(r"<script type=\"module\">\s*document\.addEventListener\(\"DOMContentLoaded\".*?mermaid.*?</script>", re.S)
_NB_LINK = re.compile(r'href="(?:\.\./notebooks/|notebooks/|\./)?(\d\d_[a-z_]+)\.ipynb(#[^"]*)?"')
_REPO_LINK = re.compile(r'href="\.\./(exercises|solutions|course_lib|docs)/')


def _postprocess(body: str, title: str) -> str:
    body, n = _MATHJAX_BLOCK.subn(lambda _m: MATHJAX_CONFIG, body)
    if n == 0:  # template changed: keep pages working, but without a CDN
        body = body.replace("</head>", MATHJAX_CONFIG + "\n</head>", 1)
    body = _MERMAID_BLOCK.sub("", body)
    body = _NB_LINK.sub(lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', body)
    body = _REPO_LINK.sub(lambda m: f'href="../../{m.group(1)}/', body)
    nav = ('<nav style="padding:8px 16px;border-bottom:1px solid #ddd;font-family:sans-serif">'
           '<a href="index.html">Contents</a> · <a href="glossary.html">Glossary</a> · '
           '<a href="errata.html">Errata</a></nav>')
    body = re.sub(r"(<body[^>]*>)", r"\1" + nav, body, count=1)
    body = re.sub(r"<title>.*?</title>", f"<title>{html.escape(title)}</title>", body, count=1, flags=re.S)
    return body


def _page(title: str, inner_html: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.5}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}</style>
{MATHJAX_CONFIG}
</head><body><nav><a href="index.html">Contents</a> · <a href="glossary.html">Glossary</a> ·
<a href="errata.html">Errata</a></nav>
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


def build(out: pathlib.Path, assets: bool = True) -> dict:
    start = time.perf_counter()
    import nbformat

    out.mkdir(parents=True, exist_ok=True)
    static = out / "_static"
    static.mkdir(exist_ok=True)
    missing = fetch_assets(static) if assets else ["assets skipped (--no-assets)"]
    exporter = _exporter()
    rows, pages = [], []
    for num, (slug, title) in CHAPTERS.items():
        if num == "16":                                       # chapters 16-18 go past the source articles
            rows.append("<tr><td></td><td><em>Beyond the articles</em></td></tr>")
        nb_path = ROOT / "notebooks" / f"{num}_{slug}.ipynb"
        if not nb_path.exists():
            rows.append(f"<tr><td>{num}</td><td>{html.escape(title)} <em>(coming)</em></td></tr>")
            continue
        nb = nbformat.read(nb_path, as_version=4)
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": f"{num} {title}"}})
        page = out / f"{num}_{slug}.html"
        page.write_text(_postprocess(body, f"{num} · {title}"), encoding="utf-8")
        pages.append(page.name)
        rows.append(f'<tr><td>{num}</td><td><a href="{page.name}">{html.escape(title)}</a></td></tr>')
    index = _page("Deep learning from scratch, interactively",
                  "<h1>Deep learning from scratch, interactively</h1>"
                  "<p>The course's chapters, as committed (executed, with their outputs). The widgets show "
                  "the state they were saved in; run <code>make lab</code> to move them.</p>"
                  "<table><tr><th>#</th><th>chapter</th></tr>" + "".join(rows) + "</table>")
    (out / "index.html").write_text(index, encoding="utf-8")
    (out / "glossary.html").write_text(_markdown_page(ROOT / "docs" / "glossary.md", "Glossary"), encoding="utf-8")
    (out / "errata.html").write_text(_markdown_page(ROOT / "docs" / "errata.md", "Errata"), encoding="utf-8")
    return {"pages": pages, "missing_assets": missing, "seconds": time.perf_counter() - start}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "build" / "book")
    parser.add_argument("--no-assets", action="store_true", help="do not fetch/copy the JS assets")
    args = parser.parse_args(argv)
    report = build(args.out, assets=not args.no_assets)
    for problem in report["missing_assets"]:
        print(f"warning: {problem}", file=sys.stderr)
    print(f"built {len(report['pages'])} chapter pages + index, glossary, errata in {args.out} "
          f"({report['seconds']:.1f} s); open {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
