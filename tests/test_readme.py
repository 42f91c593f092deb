"""The README is what a newcomer reads: its commands, chapter map and links must be true."""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    assert re.search(r"^make lab\b", README, re.M), "README must give `make lab`"
    assert re.search(r"^make test\b", README, re.M), "README must give `make test`"
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M), ".ci/run must call the README's test command"
    makefile = (ROOT / "Makefile").read_text()
    for target in ("lab:", "test:"):
        assert re.search(rf"^{target}", makefile, re.M)


def test_chapter_map_is_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "update_readme.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_chapter_listed_and_every_notebook_linked():
    rows = re.findall(r"^\| (\d\d) \|", README, re.M)
    assert rows == [f"{i:02d}" for i in range(19)]
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"(notebooks/{nb.name})" in README, f"{nb.name} is not linked from the README"


def test_every_relative_link_exists():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if "://" in target:
            continue
        assert (ROOT / target).exists(), f"README links to missing {target}"
