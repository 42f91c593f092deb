"""Generate docs/glossary.md from the term list docs/glossary_terms.tsv.

The term list holds every technical term of the five source documents (described in
docs/sources.md), as they write it in Chinese, one per line, tab-separated:

    chinese  english  notebook  heading  note

* ``notebook``: the stem of the notebook that teaches the term (``03_neurons_and_activations``), or
  ``-`` for a term the course does not teach (then ``note`` says why, starting with "not").
* ``note``: free text; a term the course teaches beyond the documents (chapters 16-18 go past the
  articles) has a note starting with "beyond the documents": it need not occur in them and is listed
  in a table of its own.
* ``heading``: the text of the heading (as rendered, e.g. ``1. The neuron``) whose section writes the
  Chinese term in its Markdown. Empty for a chapter still being written: the glossary then links the
  first section of that notebook that writes the term, or lists the term as *coming* while the
  notebook does not exist or does not write it yet.

A "section" is the Markdown from a heading to the next heading of any level. Every link is checked:
the heading must exist, and its section must write the Chinese term (an occurrence only inside a
longer term of the list, e.g. 批量 inside 小批量梯度下降, does not count).

    python tools/build_glossary.py          # rewrite docs/glossary.md
    python tools/build_glossary.py --check  # exit 1 if docs/glossary.md is out of date or a term is
                                            # not where the list says
"""
from __future__ import annotations

import csv
import functools
import pathlib
import re
import sys
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parents[1]
TERMS = ROOT / "docs" / "glossary_terms.tsv"
GLOSSARY = ROOT / "docs" / "glossary.md"
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(ROOT / "tools"))
from notebook_anchors import headings  # noqa: E402

COLUMNS = ["chinese", "english", "notebook", "heading", "note"]
_HEADING_LINE = re.compile(r"^ {0,3}#{1,6}\s")
_FENCE = re.compile(r"^\s*(```|~~~)")
CHAPTERS = {  # chapters whose notebooks may not exist yet
    "12": "12 · autoencoders and VAE", "13": "13 · GANs", "14": "14 · reinforcement learning",
    "15": "15 · applications",
}


@dataclass(frozen=True)
class Section:
    level: int
    heading: str   # rendered heading text, e.g. "1. The neuron"
    anchor: str    # as written by nbconvert / JupyterLab (unquoted)
    text: str      # the heading line and the Markdown under it, up to the next heading


@dataclass(frozen=True)
class Term:
    chinese: str
    english: str
    notebook: str
    heading: str
    note: str
    line: int


@functools.lru_cache(maxsize=None)
def _sections_cached(path: str, mtime: float) -> tuple[Section, ...]:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    raw: list[list[str]] = [[]]          # raw[0]: Markdown before the first heading
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        fence = False
        for line in cell.source.splitlines():
            if _FENCE.match(line):
                fence = not fence
            if not fence and _HEADING_LINE.match(line):
                raw.append([])
            raw[-1].append(line)
    heads = headings(path)
    if len(heads) != len(raw) - 1:
        raise ValueError(f"{path}: found {len(raw) - 1} heading lines but nbconvert renders "
                         f"{len(heads)} headings; cannot split the notebook into sections")
    return tuple(Section(level, text, anchor, "\n".join(lines))
                 for (level, text, anchor), lines in zip(heads, raw[1:]))


def sections(path) -> tuple[Section, ...]:
    """The notebook's sections, in order (Markdown only: code cells and outputs are not part of them)."""
    path = pathlib.Path(path)
    return _sections_cached(str(path), path.stat().st_mtime)


def read_terms(path=TERMS) -> list[Term]:
    """Parse the term list; raise ValueError naming the line for a malformed or duplicated entry."""
    terms, seen = [], {}
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or rows[0] != COLUMNS:
        raise ValueError(f"{path}: the first line must be the header {'<TAB>'.join(COLUMNS)}")
    for number, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(COLUMNS):
            raise ValueError(f"{path}:{number}: expected {len(COLUMNS)} tab-separated columns, got {len(row)}")
        zh, en, nb, head, note = (c.strip() for c in row)
        if not re.search(r"[\u4e00-\u9fff]", zh):
            raise ValueError(f"{path}:{number}: the chinese column has no Chinese character: {zh!r}")
        if not re.search(r"[A-Za-z]", en):
            raise ValueError(f"{path}:{number}: {zh} has no English term")
        if zh in seen:
            raise ValueError(f"{path}:{number}: {zh} is listed twice (first on line {seen[zh]})")
        if nb == "-" and not note.lower().startswith("not"):
            raise ValueError(f"{path}:{number}: {zh} is not taught (notebook '-'), so its note must say why, "
                             "starting with 'not'")
        if nb != "-" and not re.fullmatch(r"\d\d_[a-z0-9_]+", nb):
            raise ValueError(f"{path}:{number}: notebook must be a notebook stem like "
                             f"'03_neurons_and_activations' or '-', got {nb!r}")
        seen[zh] = number
        terms.append(Term(zh, en, nb, head, note, number))
    return terms


def writes(text: str, chinese: str, longer: tuple[str, ...] = ()) -> bool:
    """Does ``text`` write ``chinese`` other than as part of one of the ``longer`` terms that contain it
    (so 批量 is not "written" by a section that only writes 小批量梯度下降)?"""
    for other in sorted((o for o in longer if chinese in o and o != chinese), key=len, reverse=True):
        text = text.replace(other, "")
    return chinese in text


def resolve(term: Term, longer: tuple[str, ...] = ()):
    """('taught', Section) | ('coming', None) | ('not taught', None); raise ValueError for a bad entry.

    ``longer``: the other terms of the list; an occurrence inside one of them does not count."""
    if term.notebook == "-":
        return "not taught", None
    path = NOTEBOOKS / f"{term.notebook}.ipynb"
    if not path.exists():
        if term.heading:
            raise ValueError(f"line {term.line}: {term.chinese}: notebook {path.name} does not exist")
        if term.notebook[:2] not in CHAPTERS:
            raise ValueError(f"line {term.line}: {term.chinese}: notebook {path.name} does not exist "
                             "(only chapters 12-15 may be missing)")
        return "coming", None
    secs = sections(path)
    if not term.heading:
        for sec in secs:
            if writes(sec.text, term.chinese, longer):
                return "taught", sec
        if term.notebook[:2] not in CHAPTERS:
            raise ValueError(f"line {term.line}: {term.chinese}: no heading given and {path.name} never "
                             "writes the term in its Markdown")
        return "coming", None
    matches = [s for s in secs if s.heading == term.heading]
    if not matches:
        raise ValueError(f"line {term.line}: {term.chinese}: {path.name} has no heading {term.heading!r}")
    sec = next((s for s in matches if writes(s.text, term.chinese, longer)), None)
    if sec is None:
        raise ValueError(f"line {term.line}: {term.chinese}: the section {term.heading!r} of {path.name} "
                         "does not write the term")
    return "taught", sec


def link(notebook: str, sec: Section) -> str:
    # parentheses in an anchor would end the Markdown link early: percent-encode them
    target = sec.anchor.replace(" ", "-").replace("(", "%28").replace(")", "%29")
    label = f"{notebook[:2]} › {sec.heading}".replace("|", "\\|")
    return f"[{label}](../notebooks/{notebook}.ipynb#{target})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def beyond(term: Term) -> bool:
    """A term of the chapters beyond the source documents (note "beyond the documents ...")."""
    return term.note.lower().startswith("beyond the documents")


def render(terms: list[Term]) -> str:
    taught, coming, untaught, errors = [], [], [], []
    everything = tuple(t.chinese for t in terms)
    for term in terms:
        try:
            kind, sec = resolve(term, everything)
        except ValueError as exc:
            errors.append(str(exc))
            continue
        if kind == "taught":
            order = [s.anchor for s in sections(NOTEBOOKS / f"{term.notebook}.ipynb")].index(sec.anchor)
            taught.append(((term.notebook, order, term.line), term, sec))
        elif kind == "coming":
            coming.append(term)
        else:
            untaught.append(term)
    if errors:
        raise ValueError("docs/glossary_terms.tsv:\n  " + "\n  ".join(errors))
    taught.sort(key=lambda item: item[0])
    extra = [item for item in taught if beyond(item[1])]
    taught = [item for item in taught if not beyond(item[1])]
    out = [
        "# Glossary · 术语表",
        "",
        "Every technical term of the five source documents ([what they are](../docs/sources.md)), as they",
        "write it in Chinese, with the English term and the notebook section that teaches it: that section",
        "writes the Chinese term next to the English one. Spelling variants the documents use are listed",
        "separately (e.g. 隐藏层 / 隐层 / 隐含层). Terms the documents write in Latin letters (Sigmoid, ReLU,",
        "Dropout, LSTM, GRU, Adam, SGD, MSE, Elastic Net) are the same in both languages and are not listed.",
        "",
        "Generated by `tools/build_glossary.py` from `docs/glossary_terms.tsv` (edit the list, not this",
        "page). `tests/test_docs.py` checks that every link leads to an existing heading and that the",
        "linked section writes the Chinese term, and, where the documents are at hand",
        "(`COURSE_SOURCE_DOCS`), that every term occurs in them.",
        "",
        f"**{len(terms)} terms**: {len(taught)} taught (linked below), {len(coming)} coming (chapters still "
        f"being written), {len(untaught)} used by the documents but not taught"
        + (f"; and {len(extra)} terms of the chapters beyond the documents." if extra else "."),
        "",
        "## Taught in the notebooks",
        "",
        "| 中文 (as in the documents) | English | taught in |",
        "|---|---|---|",
    ]
    out += [f"| {_cell(t.chinese)} | {_cell(t.english)} | {link(t.notebook, sec)} |" for _, t, sec in taught]
    if extra:
        out += [
            "",
            "## Beyond the documents: terms of chapters 16-18",
            "",
            "The articles stop around 2015; chapters 16-18 go further. Their terms do not occur in the",
            "documents; they are listed with the Chinese term in common use.",
            "",
            "| 中文 | English | taught in |",
            "|---|---|---|",
        ]
        out += [f"| {_cell(t.chinese)} | {_cell(t.english)} | {link(t.notebook, sec)} |" for _, t, sec in extra]
    out += [
        "",
        "## Coming: terms whose chapter is still being written",
        "",
        "These terms belong to chapters 12-15; each moves to the table above as soon as its notebook",
        "exists and writes the term.",
        "",
        "| 中文 | English | chapter |",
        "|---|---|---|",
    ]
    out += [f"| {_cell(t.chinese)} | {_cell(t.english)} | {CHAPTERS.get(t.notebook[:2], t.notebook)} (coming) |"
            for t in coming] or ["| - | - | - |"]
    out += [
        "",
        "## Used by the documents, not taught by the course",
        "",
        "| 中文 | English | note |",
        "|---|---|---|",
    ]
    out += [f"| {_cell(t.chinese)} | {_cell(t.english)} | {_cell(t.note)} |" for t in untaught] or ["| - | - | - |"]
    return "\n".join(out) + "\n"


def main(argv) -> int:
    try:
        new = render(read_terms())
    except ValueError as exc:
        print(f"error: {exc}")
        return 1
    if "--check" in argv:
        if not GLOSSARY.exists() or GLOSSARY.read_text(encoding="utf-8") != new:
            print("docs/glossary.md is out of date: run `python tools/build_glossary.py`")
            return 1
        return 0
    GLOSSARY.write_text(new, encoding="utf-8")
    counts = next(line for line in new.splitlines() if line.startswith("**"))
    print(f"wrote {GLOSSARY.relative_to(ROOT)}: {counts.replace('**', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
