"""Glossary and errata: generated or checked against the notebooks and the source documents."""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
SEEDS = ROOT.parent / "shared" / "seeds"
sys.path.insert(0, str(ROOT / "tools"))
from notebook_anchors import anchors, normalise  # noqa: E402

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
    seeds = "".join(p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))) if SEEDS.exists() else None
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
    seeds = "".join(p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))) if SEEDS.exists() else None
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
