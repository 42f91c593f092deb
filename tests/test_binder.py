"""binder/ (what repo2docker builds for Binder and JupyterHub images) stays consistent with the pins.

repo2docker reads only binder/ when that folder exists: runtime.txt picks Python, requirements.txt is
installed with pip from the repository's root, postBuild runs after it, and start wraps every
container start. These tests check that the image installs exactly requirements.lock (whose
agreement with pyproject.toml and environment.yml is tests/test_environment.py's job), installs
course_lib without re-resolving dependencies, and runs JAX on the CPU like `make lab`.
"""
import os
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def effective_lines(path):
    """Lines of a requirements or shell file without comments and blank lines."""
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip() if not line.startswith("#!") else ""
        if line:
            out.append(line)
    return out


def test_runtime_is_the_python_of_the_pins():
    runtime = (BINDER / "runtime.txt").read_text().strip()
    assert runtime == "python-3.11"
    with open(ROOT / "pyproject.toml", "rb") as fh:
        requires = tomllib.load(fh)["project"]["requires-python"]
    assert requires == ">=3.11,<3.12", "runtime.txt and pyproject.toml's requires-python must name the same Python"


def test_requirements_install_exactly_the_lock():
    lines = effective_lines(BINDER / "requirements.txt")
    assert lines == ["-r ../requirements.lock"], (
        "binder/requirements.txt must only include requirements.lock (pins belong in the lock, not here)")
    # pip resolves a nested -r relative to the file that contains it
    assert (BINDER / "../requirements.lock").resolve() == (ROOT / "requirements.lock").resolve()


def test_no_other_environment_file_in_binder():
    """repo2docker picks environment.yml over requirements.txt, and Pipfile/setup.py/install.R
    would add other installs: binder/ holds only the five files of this image."""
    assert sorted(p.name for p in BINDER.iterdir()) == ["apt.txt", "postBuild", "requirements.txt", "runtime.txt",
                                                        "start"]


def test_apt_installs_only_bubblewrap():
    """The image can grade (python -m grader refuses to run without bubblewrap) and serve as a Dask
    grading worker; nothing else comes from Debian."""
    assert effective_lines(BINDER / "apt.txt") == ["bubblewrap"]


def test_post_build_installs_course_lib_without_dependencies():
    path = BINDER / "postBuild"
    assert os.access(path, os.X_OK), "postBuild must be executable"
    assert path.read_text().startswith("#!/bin/bash\n")
    lines = effective_lines(path)
    assert lines[:2] == ["set -euo pipefail", "python -m pip install --no-cache-dir --no-deps -e ."], lines
    for line in lines[2:]:  # the rest only switches the instructor-only parts of nbgrader off
        assert re.fullmatch(r"jupyter (server extension disable --sys-prefix nbgrader\.server_extensions\.\w+"
                            r"|labextension disable --level=sys_prefix @jupyter/nbgrader:[\w-]+)", line), line
    nbgrader = {"formgrader", "course_list", "course-list", "create-assignment"}
    assert {re.split(r"[.:]", ln)[-1] for ln in lines[2:]} == nbgrader


def test_start_sets_the_course_environment_and_hands_over():
    path = BINDER / "start"
    assert os.access(path, os.X_OK), "start must be executable"
    lines = effective_lines(path)
    assert lines[-1] == 'exec "$@"', "start must end by running the server it wraps"
    exports = dict(re.fullmatch(r"export (\w+)=(.*)", ln).groups() for ln in lines[:-1])
    makefile = dict(re.findall(r"^export (\w+) := (.*)$", (ROOT / "Makefile").read_text(), re.M))
    assert exports["JAX_PLATFORMS"] == makefile["JAX_PLATFORMS"] == "cpu"
    for name, value in exports.items():
        if name in makefile and "CURDIR" not in makefile[name]:
            assert value == makefile[name], f"{name}: binder/start says {value}, the Makefile {makefile[name]}"


def test_effective_lines_strips_comments():
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("#!/bin/bash\n# comment\n\n-r x.txt  # why\n")
    try:
        assert effective_lines(Path(fh.name)) == ["-r x.txt"]
    finally:
        os.unlink(fh.name)


def test_readme_binder_links_agree_and_open_an_existing_notebook():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\((https://mybinder\.org/v2/[^)\s]+)\)", readme)
    assert len(links) >= 2, "README needs the Binder badge and the link in its Binder section"
    assert len(set(links)) == 1, f"README's Binder links differ: {sorted(set(links))}"
    m = re.fullmatch(r"https://mybinder\.org/v2/gh/([\w.-]+)/([\w.-]+)/([\w.-]+)\?urlpath=lab/tree/(\S+)", links[0])
    assert m, f"not a Binder launch link for a GitHub repository opening JupyterLab: {links[0]}"
    assert (ROOT / m.group(4)).is_file(), f"the Binder link opens {m.group(4)}, which does not exist"
    assert readme.index("badge_logo.svg") < readme.index("## Start"), "the badge belongs at the top"
