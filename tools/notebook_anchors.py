"""Heading anchors of a notebook, computed exactly as the book (nbconvert) and JupyterLab write them.

``headings(path)`` -> [(level, text, anchor)] in order; ``anchors(path)`` -> set of anchors. An anchor
is the heading's text with spaces turned into ``-`` (non-ASCII characters percent-encoded in HTML);
links may use either form: :func:`normalise` maps both to one.
"""
from __future__ import annotations

import html
import json
import pathlib
import re
import urllib.parse

_HEADING = re.compile(r'<h([1-6]) id="([^"]+)">(.*?)<a class="anchor-link"', re.S)


def headings(path) -> list[tuple[int, str, str]]:
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    nb = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    out = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"])
        if "#" not in source:
            continue
        rendered = markdown2html_mistune(source)
        for level, anchor, inner in _HEADING.findall(rendered):
            text = html.unescape(re.sub(r"<[^>]+>", "", inner)).strip()
            out.append((int(level), text, normalise(anchor)))
    return out


def normalise(anchor: str) -> str:
    return urllib.parse.unquote(anchor.lstrip("#"))


def anchors(path) -> set[str]:
    return {a for _, _, a in headings(path)}
