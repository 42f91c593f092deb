"""The course's diagrams: drawn by code, committed as SVG in ``notebooks/figures/``, shown in the chapters.

    python tools/build_diagrams.py            # redraw every SVG and insert/update the figure cells
    python tools/build_diagrams.py --check    # exit 1 if a committed SVG or figure cell is out of date

Every diagram is a :class:`Diagram`: a function that draws it (in the chapter's notation; numbers that
stand for a real computation are computed by ``course_lib``'s public functions), the notebook and the
cell it follows, an alt text and a caption. ``tools/build_diagrams.py`` writes the SVG and a Markdown
cell ``fig-<name>`` right after that cell (a new cell with its own id, never a change to an existing
one), so running it again after the chapters change only updates what changed.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable

__all__ = ["Diagram", "DIAGRAMS", "by_name", "cell_id", "cell_source", "figure_numbers"]


@dataclasses.dataclass(frozen=True)
class Diagram:
    name: str                 # file stem in notebooks/figures/, starts with the chapter number
    notebook: str             # notebook stem, e.g. "06_backpropagation"
    after: str                # id of the notebook cell the figure follows
    alt: str                  # alt text (what the picture shows, for screen readers and the book)
    caption: str              # Markdown, one or two sentences in the chapter's notation
    draw: Callable            # () -> matplotlib Figure

    @property
    def chapter(self) -> int:
        return int(self.name[:2])


def _collect():
    from . import ch00_05, ch06_09, ch10_11, ch12_15, ch16_18

    items = [*ch00_05.DIAGRAMS, *ch06_09.DIAGRAMS, *ch10_11.DIAGRAMS, *ch12_15.DIAGRAMS, *ch16_18.DIAGRAMS]
    names = [d.name for d in items]
    if len(set(names)) != len(names):
        raise ValueError(f"diagram names must be unique: {sorted(n for n in names if names.count(n) > 1)}")
    for d in items:
        if not re.fullmatch(r"\d\d_[a-z0-9_]+", d.name) or d.name[:2] != d.notebook[:2]:
            raise ValueError(f"diagram {d.name!r}: the name must be NN_words and match its notebook {d.notebook!r}")
    return items


DIAGRAMS: list[Diagram] = _collect()


def by_name(name: str) -> Diagram:
    for d in DIAGRAMS:
        if d.name == name:
            return d
    raise KeyError(f"no diagram named {name!r}; known: {[d.name for d in DIAGRAMS]}")


def figure_numbers() -> dict[str, str]:
    """``{name: "6.2"}``: diagrams are numbered per chapter, in the order of this registry (which
    follows the order of the cells they follow)."""
    counts: dict[int, int] = {}
    out = {}
    for d in DIAGRAMS:
        counts[d.chapter] = counts.get(d.chapter, 0) + 1
        out[d.name] = f"{d.chapter}.{counts[d.chapter]}"
    return out


def cell_id(d: Diagram) -> str:
    return "fig-" + d.name.replace("_", "-")


def cell_source(d: Diagram) -> str:
    """The Markdown of the figure cell: the picture, then its numbered caption."""
    return f"![{d.alt}](figures/{d.name}.svg)\n\n*Figure {figure_numbers()[d.name]}.* {d.caption}"
