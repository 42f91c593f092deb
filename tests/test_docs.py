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
    rows = glossary_rows()
    assert rows
    seeds = "".join(p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))) if SEEDS.exists() else None
    seen = set()
    for zh, en, link in rows:
        assert zh not in seen, f"glossary lists {zh} twice"
        seen.add(zh)
        assert en and re.search(r"[A-Za-z]", en), f"glossary: {zh} has no English term"
        if seeds is not None:
            assert zh in seeds, f"glossary term {zh} does not occur in the source documents"
        nb_name, _ = LINK.search(link).groups()
        nb_text = (ROOT / "notebooks" / nb_name).read_text(encoding="utf-8")
        assert zh in nb_text, f"{nb_name} (linked for {zh}) never writes the term {zh}"
