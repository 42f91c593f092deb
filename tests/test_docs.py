"""Glossary and errata: generated or checked against the notebooks and the source documents.

The source documents are not part of the repository. Tests that compare with them run when
COURSE_SOURCE_DOCS names the folder holding them (000_*.txt ... 004_*.txt) and are skipped otherwise.
"""
import json
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_errata  # noqa: E402
from notebook_anchors import anchors, normalise  # noqa: E402

DOCUMENTS = build_errata.source_documents()

LINK = re.compile(r"\(\.\./notebooks/([^)#]+\.ipynb)#([^)]+)\)")


def glossary_rows():
    rows = []
    for line in (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.search(r"[\u4e00-\u9fff]", cells[0]) and cells[2].startswith("["):
            rows.append(cells)
    return rows


def test_errata_page_is_generated_from_the_notebooks():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_errata.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_errata_and_glossary_link_resolves_to_a_heading():
    cache = {}
    for doc in ("errata.md", "glossary.md"):
        text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
        links = LINK.findall(text)
        assert links, f"docs/{doc} links to no notebook section"
        for nb_name, anchor in links:
            nb = ROOT / "notebooks" / nb_name
            assert nb.exists(), f"docs/{doc} links to missing notebook {nb_name}"
            if nb not in cache:
                cache[nb] = anchors(nb)
            assert normalise(anchor) in cache[nb], f"docs/{doc}: no heading #{anchor} in {nb_name}"


def test_glossary_terms_are_the_documents_terms_and_the_notebooks_use_them():
    """Every linked term occurs in the source documents and is written in the section it links to."""
    import build_glossary

    rows = glossary_rows()
    assert rows
    everything = tuple(t.chinese for t in build_glossary.read_terms())
    beyond = {t.chinese for t in build_glossary.read_terms() if build_glossary.beyond(t)}
    seeds = "".join(DOCUMENTS.values()) if DOCUMENTS else None
    seen = set()
    for zh, en, link in rows:
        assert zh not in seen, f"glossary lists {zh} twice"
        seen.add(zh)
        assert en and re.search(r"[A-Za-z]", en), f"glossary: {zh} has no English term"
        if seeds is not None and zh not in beyond:
            assert zh in seeds, f"glossary term {zh} does not occur in the source documents"
        nb_name, anchor = LINK.search(link).groups()
        secs = [s for s in build_glossary.sections(ROOT / "notebooks" / nb_name) if s.anchor == normalise(anchor)]
        assert secs, f"glossary: {zh} links to no heading #{anchor} of {nb_name}"
        assert any(build_glossary.writes(s.text, zh, everything) for s in secs), \
            f"{nb_name} section #{anchor} (linked for {zh}) never writes {zh} (other than inside a longer term)"


def test_glossary_is_generated_from_its_term_list():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_glossary.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_glossary_lists_every_term_of_the_list_once_and_every_document_term_exists():
    import build_glossary

    terms = build_glossary.read_terms()
    text = (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8")
    first_cells = [line.split("|")[1].strip() for line in text.splitlines()
                   if line.startswith("| ") and re.search(r"[\u4e00-\u9fff]", line.split("|")[1])
                   and not line.startswith("| 中文")]
    assert sorted(first_cells) == sorted(t.chinese for t in terms)
    seeds = "".join(DOCUMENTS.values()) if DOCUMENTS else None
    for t in terms:
        if seeds is not None and not build_glossary.beyond(t):
            assert t.chinese in seeds, f"glossary_terms.tsv line {t.line}: {t.chinese} is not in the source documents"
        if t.notebook == "-":
            assert t.note.lower().startswith("not"), f"{t.chinese}: a term the course does not teach needs a note"
    # chapters 00-11 exist: each of their terms must be linked (resolve raises if it is not where the list says)
    everything = tuple(t.chinese for t in terms)
    for t in terms:
        if t.notebook != "-" and t.notebook[:2] not in build_glossary.CHAPTERS:
            kind, sec = build_glossary.resolve(t, everything)
            assert kind == "taught" and build_glossary.writes(sec.text, t.chinese, everything)


def test_glossary_tool_rejects_a_term_that_is_not_where_the_list_says(tmp_path):
    import pytest

    import build_glossary

    good = build_glossary.Term("感知机", "perceptron", "01_what_is_deep_learning", "3. The perceptron", "", 2)
    assert build_glossary.resolve(good)[0] == "taught"
    with pytest.raises(ValueError, match="does not write the term"):
        build_glossary.resolve(good.__class__(**{**good.__dict__, "heading": "2. The workflow: train, validation, test"}))
    with pytest.raises(ValueError, match="has no heading"):
        build_glossary.resolve(good.__class__(**{**good.__dict__, "heading": "99. No such section"}))
    with pytest.raises(ValueError, match="does not exist"):
        build_glossary.resolve(good.__class__(**{**good.__dict__, "notebook": "07_no_such_notebook"}))
    # a section that writes 小批量梯度下降 does not write 批量, though the characters are there
    longer = ("批量", "小批量梯度下降", "小批量")
    assert not build_glossary.writes("SGD (小批量梯度下降; 小批量)", "批量", longer)
    assert build_glossary.writes("SGD (小批量梯度下降); GD (批量)", "批量", longer)
    assert build_glossary.writes("SGD (小批量梯度下降)", "批量")  # without the list: a plain substring test
    coming = build_glossary.Term("强化学习", "reinforcement learning", "14_not_written_yet", "", "", 3)
    assert build_glossary.resolve(coming) == ("coming", None)
    bad = tmp_path / "terms.tsv"
    header = "\t".join(build_glossary.COLUMNS)
    bad.write_text(header + "\n感知机\tperceptron\t-\t\t\n", encoding="utf-8")
    with pytest.raises(ValueError, match="note must say why"):
        build_glossary.read_terms(bad)
    bad.write_text(header + "\n感知机\tperceptron\t-\t\tnot taught\n感知机\tperceptron\t-\t\tnot taught\n",
                   encoding="utf-8")
    with pytest.raises(ValueError, match="listed twice"):
        build_glossary.read_terms(bad)
    bad.write_text(header + "\nperceptron\tperceptron\t-\t\tnot taught\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no Chinese character"):
        build_glossary.read_terms(bad)


# ------------------------------------------------------------------------------------------ errata
def _notebook(path, markdown_cells):
    cells = [{"cell_type": "markdown", "id": f"c{i}", "metadata": {}, "source": text}
             for i, text in enumerate(markdown_cells)]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}),
                    encoding="utf-8")


def _table(path, rows):
    path.write_text("\t".join(build_errata.COLUMNS) + "\n" + "".join("\t".join(r) + "\n" for r in rows),
                    encoding="utf-8")


def test_errata_join_every_box_to_its_quoted_sentence(tmp_path):
    """The page quotes the sentence, its translation and the box's correction, under its document."""
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "03_demo.ipynb", ["## 1. Sigmoid\n\n> **Common misconception.** \"tanh never saturates\".\n"
                                      "> It does, like the sigmoid.\n",
                                      "## 2. History\n\nThe perceptron is from 1957."])
    table = tmp_path / "rows.tsv"
    _table(table, [["03_demo", "tanh never saturates", "", "000", "§3.1.1", "可以避免梯度消失", "it avoids vanishing", "", ""],
                   ["03_demo", "", "2. History", "004", "§2", "1943年", "in 1943", "", "It is from 1957."]])
    entries = build_errata.entries(build_errata.read_rows(table), nbs)
    page = build_errata.render(entries)
    assert "**000 §3.1.1:** 「可以避免梯度消失」 (*it avoids vanishing*)" in page
    assert "**Correct:** \"tanh never saturates\". It does, like the sigmoid." in page
    assert "(../notebooks/03_demo.ipynb#1.-Sigmoid)" in page and "(../notebooks/03_demo.ipynb#2.-History)" in page
    assert page.index("## 000") < page.index("可以避免梯度消失") < page.index("## 001")
    assert page.index("## 004") < page.index("It is from 1957.")


def test_errata_tool_rejects_a_box_without_a_row_and_a_row_without_its_box(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "03_demo.ipynb", ["## 1. A\n\n> **Common misconception.** First claim.\n",
                                      "> **Common misconception.** Second claim.\n"])
    table = tmp_path / "rows.tsv"
    _table(table, [["03_demo", "First claim", "", "-", "", "", "", "", ""],
                   ["03_demo", "No such claim", "", "-", "", "", "", "", ""],
                   ["03_demo", "", "9. Missing", "001", "§1", "句子", "a sentence", "", "The fix."]])
    with pytest.raises(ValueError) as err:
        build_errata.entries(build_errata.read_rows(table), nbs)
    message = str(err.value)
    assert "'No such claim' is in no box" in message
    assert "no heading '9. Missing'" in message
    assert "a misconception box has no row" in message and "Second claim" in message
    _table(table, [["03_demo", "claim", "", "-", "", "", "", "", ""]])   # matches both boxes
    with pytest.raises(ValueError, match="is in 2 boxes"):
        build_errata.entries(build_errata.read_rows(table), nbs)


@pytest.mark.parametrize("row, message", [
    (["03_demo", "x", "", "005", "§1", "句子", "gloss", "", ""], "doc must be one of"),
    (["03_demo", "x", "", "000", "§1", "", "gloss", "", ""], "needs its section, the quote and its English gloss"),
    (["03_demo", "x", "", "-", "§1", "", "", "", ""], "takes no section, quote or gloss"),
    (["03_demo", "x", "A heading", "-", "", "", "", "", ""], "not both"),
    (["03_demo", "", "A heading", "000", "§1", "句子", "gloss", "", ""], "needs the correction itself"),
    (["03_demo", "x", "", "000", "§1", "句子", "gloss", "", "a fix"], "states its own correction"),
    (["03_demo", "x", "", "000", "§1", "句子"], "columns, expected"),
])
def test_errata_tool_rejects_a_malformed_row(tmp_path, row, message):
    table = tmp_path / "rows.tsv"
    _table(table, [row])
    with pytest.raises(ValueError, match=re.escape(message)):
        build_errata.read_rows(table)


def test_errata_tool_finds_a_misquoted_sentence():
    rows = [build_errata.Row("03_demo", "x", "", "000", "§1", "可以……避免", "g", "", "", 2),
            build_errata.Row("03_demo", "x", "", "001", "§1", "不在这里", "g", "", "", 3)]
    documents = {"000": "它可以\n很好地避免", "001": "别的句子"}
    assert build_errata.misquoted(rows, documents) == ["line 3: '不在这里' is not in document 001"]


@pytest.mark.skipif(DOCUMENTS is None, reason="COURSE_SOURCE_DOCS is not set: the source documents are not at hand")
def test_every_errata_quote_occurs_in_its_source_document():
    assert build_errata.misquoted(build_errata.read_rows(), DOCUMENTS) == []


# ------------------------------------------------------------------------------ self-contained repo
def _repository_files():
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        files = [ROOT / p for p in listed.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (e.g. an unpacked archive)
        skip = {".git", ".venv", ".cache", "build", "node_modules"}
        files = [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]
    return [p for p in files if p.is_file()]


def test_nothing_in_the_repository_points_at_the_engineers_shared_folder():
    """Students and instructors have only the repository: no file may lead them to the developers'
    folder beside it (source documents, syllabus, style notes)."""
    outside = re.compile("(?:\\.\\./|/work/)" + "shared" + r"\b|" + "shared/" + "seeds")
    offenders = []
    for path in _repository_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for m in outside.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            offenders.append(f"{path.relative_to(ROOT)}:{line}: {m.group(0)}")
    assert not offenders, "files that point outside the repository:\n" + "\n".join(offenders[:20])
