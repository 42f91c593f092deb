"""Generate docs/errata.md: every place where a source document is wrong, the sentence quoted.

The corrections live in the notebooks: a Markdown "Common misconception" box (a paragraph starting
with ``> **Common misconception.**``) states the correct fact, and the cell after it demonstrates it;
a few corrections of dates, names and attributions are plain text in a section. What each one
corrects lives in ``docs/errata_sources.tsv``, one row per quoted sentence, tab-separated::

    notebook  box  heading  doc  section  quote  gloss  note  correction

* ``notebook``: the notebook's stem (``03_neurons_and_activations``).
* ``box``: a phrase of the box's text that no other box of that notebook contains; it ties the row
  to its box. Several rows with the same phrase: a box that corrects several sentences.
* ``heading``: instead of ``box``, for a correction written as text: the heading (as rendered) of
  the section that explains it; ``correction`` then states the correct fact (a box states its own).
* ``doc``: ``000``-``004``, or ``-`` for a box that corrects a common mistake no document makes.
* ``section``: where in the document (``§3.1.1``, ``§三.3``, ``def 6``, ``模型效果分析 (混淆矩阵)``).
* ``quote``: the sentence as the document writes it (Chinese, verbatim; ``……`` joins pieces).
* ``gloss``: its English translation. ``note``: an optional remark printed with the entry.

The page groups the entries by document (an entry quoting several documents is listed under each)
and links each to its notebook section. Every box needs a row and every row its box or heading;
otherwise the page is not written and the problems are listed.

The source documents are not part of the repository (``docs/sources.md`` describes them). Whoever
has them can point ``COURSE_SOURCE_DOCS`` at the folder holding ``000_*.txt`` ... ``004_*.txt``;
then ``--check`` and ``tests/test_docs.py`` also verify that every quote occurs in its document
(whitespace ignored).

    python tools/build_errata.py          # rewrite docs/errata.md
    python tools/build_errata.py --check  # exit 1 if docs/errata.md is out of date or a row is wrong
"""
from __future__ import annotations

import csv
import json
import os
import pathlib
import re
import sys
from dataclasses import dataclass, field

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from notebook_anchors import headings  # noqa: E402

MARK = "> **Common misconception.**"
SOURCES_TSV = ROOT / "docs" / "errata_sources.tsv"
ERRATA = ROOT / "docs" / "errata.md"
NOTEBOOKS = ROOT / "notebooks"
COLUMNS = ["notebook", "box", "heading", "doc", "section", "quote", "gloss", "note", "correction"]
SOURCES_ENV = "COURSE_SOURCE_DOCS"
DOCS = {
    "000": "DNN, CNN and RNN principles (untitled, no author given)",
    "001": "*Deep Learning原理与代码实例讲解* (principles with code; no author given)",
    "002": "CNN-centred principles (untitled, no author given)",
    "003": "From theory to practice, by 禅与计算机程序设计艺术 (untitled)",
    "004": "Core concepts, by 禅与计算机程序设计艺术 (untitled)",
}
QUOTE_JOIN = "……"


@dataclass(frozen=True)
class Row:
    notebook: str
    box: str
    heading: str
    doc: str
    section: str
    quote: str
    gloss: str
    note: str
    correction: str
    line: int


@dataclass(frozen=True)
class Box:
    notebook: str       # stem
    heading: str        # rendered text of the heading the box sits under
    anchor: str
    order: tuple        # (heading index, box index) within the notebook
    text: str           # the box, its lines joined, without the leading '>'


@dataclass
class Entry:
    notebook: str
    heading: str
    anchor: str
    order: tuple
    body: str           # the correct fact
    kind: str           # "box" or "text"
    rows: list = field(default_factory=list)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def read_rows(path: pathlib.Path = SOURCES_TSV) -> list[Row]:
    """The rows of the citation table, checked one by one (ValueError naming every bad line)."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header != COLUMNS:
            raise ValueError(f"{path.name}: the header must be {' '.join(COLUMNS)}, got {header}")
        rows, errors = [], []
        for line, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(COLUMNS):
                errors.append(f"line {line}: {len(cells)} columns, expected {len(COLUMNS)}")
                continue
            row = Row(*(c.strip() for c in cells), line=line)
            if not re.fullmatch(r"\d\d_[a-z0-9_]+", row.notebook):
                errors.append(f"line {line}: notebook must be a notebook stem like 03_neurons_and_activations")
            if bool(row.box) == bool(row.heading):
                errors.append(f"line {line}: give either a box phrase or a heading, not {'both' if row.box else 'neither'}")
            if row.heading and not row.correction:
                errors.append(f"line {line}: a correction made in the text (heading) needs the correction itself")
            if row.box and row.correction:
                errors.append(f"line {line}: a box states its own correction; leave the correction column empty")
            if row.doc not in DOCS and row.doc != "-":
                errors.append(f"line {line}: doc must be one of {', '.join(DOCS)} or '-', got {row.doc!r}")
            if row.doc == "-":
                if row.section or row.quote or row.gloss:
                    errors.append(f"line {line}: doc '-' (no document) takes no section, quote or gloss")
                if row.heading:
                    errors.append(f"line {line}: a correction made in the text must quote a document")
            elif not (row.section and row.quote and row.gloss):
                errors.append(f"line {line}: a cited document needs its section, the quote and its English gloss")
            rows.append(row)
    if errors:
        raise ValueError(f"{path.name}:\n  " + "\n  ".join(errors))
    return rows


def boxes(notebooks: pathlib.Path = NOTEBOOKS):
    """Every misconception box of every notebook, in order."""
    for nb_path in sorted(notebooks.glob("*.ipynb")):
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
        heads = iter(headings(nb_path))
        current, h_index, n_box = ("", ""), -1, 0
        for cell in nb["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            source = "".join(cell["source"])
            lines = source.splitlines()
            i = 0
            while i < len(lines):
                if re.match(r" {0,3}#{1,6} ", lines[i]):
                    h = next(heads, None)
                    if h:
                        current, h_index = (h[1], h[2]), h_index + 1
                if lines[i].startswith(MARK):  # the box runs while lines start with '>'
                    j = i
                    while j < len(lines) and lines[j].startswith(">"):
                        j += 1
                    text = _squash(" ".join(l[1:].strip() for l in lines[i:j]))
                    n_box += 1
                    yield Box(nb_path.stem, current[0], current[1], (h_index, n_box), text)
                    i = j
                else:
                    i += 1


def entries(rows: list[Row], notebooks: pathlib.Path = NOTEBOOKS) -> list[Entry]:
    """Join the rows with the notebooks' boxes and headings; ValueError listing every mismatch."""
    errors = []
    all_boxes = list(boxes(notebooks))
    by_box: dict[Box, Entry] = {}
    used = set()
    for row in rows:
        if not row.box:
            continue
        matches = [b for b in all_boxes if b.notebook == row.notebook and _squash(row.box) in b.text]
        if len(matches) != 1:
            where = "no box" if not matches else f"{len(matches)} boxes"
            errors.append(f"line {row.line}: the phrase {row.box!r} is in {where} of notebooks/{row.notebook}.ipynb")
            continue
        b = matches[0]
        used.add(b)
        body = b.text.replace("**Common misconception.**", "", 1).strip()
        by_box.setdefault(b, Entry(b.notebook, b.heading, b.anchor, b.order, body, "box")).rows.append(row)
    for b in all_boxes:
        if b not in used:
            errors.append(f"notebooks/{b.notebook}.ipynb, section {b.heading!r}: a misconception box has no row in "
                          f"{SOURCES_TSV.name} (it starts: {b.text[len('**Common misconception.**'):][:70].strip()!r})")
    text_entries = []
    heads_cache = {}
    for row in rows:
        if not row.heading:
            continue
        nb_path = notebooks / f"{row.notebook}.ipynb"
        if not nb_path.exists():
            errors.append(f"line {row.line}: notebooks/{row.notebook}.ipynb does not exist")
            continue
        heads = heads_cache.setdefault(row.notebook, headings(nb_path))
        found = [(k, h) for k, h in enumerate(heads) if h[1] == row.heading]
        if not found:
            errors.append(f"line {row.line}: notebooks/{row.notebook}.ipynb has no heading {row.heading!r}")
            continue
        k, h = found[0]
        text_entries.append(Entry(row.notebook, h[1], h[2], (k, 0, row.line), row.correction, "text", [row]))
    if errors:
        raise ValueError(f"{SOURCES_TSV.name} and the notebooks disagree:\n  " + "\n  ".join(errors))
    out = list(by_box.values()) + text_entries
    return sorted(out, key=lambda e: (e.notebook, e.order))


def source_documents(env=None) -> dict[str, str] | None:
    """{"000": text, ...} from the folder named by $COURSE_SOURCE_DOCS, or None when it is not set."""
    folder = (os.environ if env is None else env).get(SOURCES_ENV)
    if not folder:
        return None
    found = {}
    for doc in DOCS:
        paths = sorted(pathlib.Path(folder).glob(f"{doc}_*.txt")) or sorted(pathlib.Path(folder).glob(f"{doc}.txt"))
        if not paths:
            raise FileNotFoundError(f"{SOURCES_ENV}={folder}: no {doc}_*.txt in that folder")
        found[doc] = paths[0].read_text(encoding="utf-8")
    return found


def misquoted(rows: list[Row], documents: dict[str, str]) -> list[str]:
    """The rows whose quote does not occur in its document (whitespace ignored)."""
    squeezed = {doc: re.sub(r"\s+", "", text) for doc, text in documents.items()}
    problems = []
    for row in rows:
        if row.doc == "-":
            continue
        for piece in row.quote.split(QUOTE_JOIN):
            if re.sub(r"\s+", "", piece) not in squeezed[row.doc]:
                problems.append(f"line {row.line}: {piece!r} is not in document {row.doc}")
    return problems


def _link(e: Entry) -> str:
    # parentheses in an anchor would end the Markdown link early: percent-encode them
    target = e.anchor.replace(" ", "-").replace("(", "%28").replace(")", "%29")
    return f"[{e.notebook} › {e.heading}](../notebooks/{e.notebook}.ipynb#{target})"


def _quote_markdown(quote: str) -> str:
    """A quoted formula (LaTeX, no Chinese) is shown as math; a sentence as it is."""
    if re.search(r"\\[A-Za-z]", quote) and not re.search(r"[\u4e00-\u9fff]", quote):
        return f"「${quote}$」"
    return f"「{quote}」"


def _entry_markdown(e: Entry) -> str:
    quoted = [r for r in e.rows if r.doc != "-"]
    notes = [r.note for r in e.rows if r.note]
    parts = []
    if quoted:
        cites = "; ".join(f"**{r.doc} {r.section}:** {_quote_markdown(r.quote)} (*{r.gloss}*)" for r in quoted)
        parts.append(f"- {cites}")
        parts.append(f"  **Correct:** {e.body}")
    else:
        parts.append(f"- {e.body}")
    parts += [f"  *Note:* {n}" for n in notes]
    parts.append(f"  {'Demonstrated' if e.kind == 'box' else 'Explained'} in {_link(e)}.")
    return "\n\n".join(parts)


def render(all_entries: list[Entry]) -> str:
    out = ["# Errata: where the source documents are wrong", "",
           "Generated by `tools/build_errata.py` from the notebooks' *Common misconception* boxes and the "
           "corrections in their text, with the citations of `docs/errata_sources.tsv` (do not edit this "
           "page by hand). The five source documents, Chinese articles on deep-learning principles, are "
           "described in [sources](../docs/sources.md). Each entry quotes the sentence it corrects as the "
           "document writes it (with an English translation), states the correct fact, and links to the "
           "notebook section that demonstrates or explains it. An entry that concerns several documents is "
           "listed under each.", ""]
    for doc, title in DOCS.items():
        out += [f"## {doc} · {title}", ""]
        mine = [_entry_markdown(e) for e in all_entries if any(r.doc == doc for r in e.rows)]
        out += ["\n\n".join(mine) if mine else "*(no entry yet)*", ""]
    general = [_entry_markdown(e) for e in all_entries if all(r.doc == "-" for r in e.rows)]
    if general:
        out += ["## Common mistakes that no document makes", "",
                "Boxes that correct a mistake found in tutorials and practice, not in the documents.", "",
                "\n\n".join(general), ""]
    return "\n".join(out)


def main(argv) -> int:
    try:
        rows = read_rows()
        new = render(entries(rows))
        documents = source_documents()
    except (ValueError, FileNotFoundError) as exc:
        print(exc)
        return 1
    if documents is not None:
        problems = misquoted(rows, documents)
        if problems:
            print(f"{SOURCES_TSV.name}: quotes not found in the source documents:\n  " + "\n  ".join(problems))
            return 1
    if "--check" in argv:
        if not ERRATA.exists() or ERRATA.read_text(encoding="utf-8") != new:
            print("docs/errata.md is out of date: run `python tools/build_errata.py`")
            return 1
        return 0
    ERRATA.write_text(new, encoding="utf-8")
    n = len([e for e in entries(rows)])
    print(f"wrote {ERRATA} ({n} entries from {len(rows)} rows"
          f"{'' if documents is None else ', every quote found in the source documents'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
