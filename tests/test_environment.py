"""The three places that pin the environment agree, and the running interpreter matches them.

pyproject.toml (dependencies + the ``test`` extra), environment.yml (its pip section) and
requirements.lock must name the same packages at the same exact versions, and every package in the
lock must be installed at its locked version (stored notebook outputs depend on it).
"""
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)\s*$")


def normalize(name):
    """PEP 503 normalisation: 'scikit_learn' and 'Scikit.Learn' are the same package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(lines, source):
    pins = {}
    for line in lines:
        m = PIN.match(line)
        assert m, f"{source}: {line!r} is not an exact 'name==version' pin"
        name = normalize(m.group(1))
        assert name not in pins, f"{source}: {name} is pinned twice"
        pins[name] = m.group(2)
    return pins


@pytest.fixture(scope="module")
def pyproject():
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


@pytest.fixture(scope="module")
def pyproject_pins(pyproject):
    project = pyproject["project"]
    lines = list(project["dependencies"]) + list(project["optional-dependencies"]["test"])
    return parse_pins(lines, "pyproject.toml")


@pytest.fixture(scope="module")
def environment_yml():
    with open(ROOT / "environment.yml") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def conda_pip_pins(environment_yml):
    pip_sections = [d["pip"] for d in environment_yml["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml must have exactly one pip: section"
    return parse_pins(pip_sections[0], "environment.yml")


@pytest.fixture(scope="module")
def lock_pins():
    lines = [ln for ln in (ROOT / "requirements.lock").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    return parse_pins(lines, "requirements.lock")


def test_pyproject_and_environment_yml_pin_the_same_packages(pyproject_pins, conda_pip_pins):
    only_pyproject = sorted(set(pyproject_pins) - set(conda_pip_pins))
    only_conda = sorted(set(conda_pip_pins) - set(pyproject_pins))
    assert not only_pyproject and not only_conda, (
        f"only in pyproject.toml: {only_pyproject}; only in environment.yml: {only_conda}")
    differ = {n: (pyproject_pins[n], conda_pip_pins[n]) for n in pyproject_pins
              if pyproject_pins[n] != conda_pip_pins[n]}
    assert not differ, f"versions differ (pyproject.toml, environment.yml): {differ}"


def test_every_direct_pin_is_in_the_lock_at_the_same_version(pyproject_pins, lock_pins):
    missing = sorted(set(pyproject_pins) - set(lock_pins))
    assert not missing, f"pinned in pyproject.toml but not in requirements.lock: {missing}"
    differ = {n: (v, lock_pins[n]) for n, v in pyproject_pins.items() if lock_pins[n] != v}
    assert not differ, f"versions differ (pyproject.toml, requirements.lock): {differ}"


def test_every_extra_but_bench_is_in_the_lock_at_the_same_version(pyproject, lock_pins):
    """The lock pins the whole tree that `make venv` installs: the cluster extra (Dask) included;
    only the benchmark-only extra (torch) stays out."""
    for extra, lines in pyproject["project"]["optional-dependencies"].items():
        if extra == "bench":
            continue
        pins = parse_pins(lines, f"pyproject.toml [{extra}]")
        differ = {n: (v, lock_pins.get(n)) for n, v in pins.items() if lock_pins.get(n) != v}
        assert not differ, f"[{extra}] pins not in requirements.lock at the same version (pyproject, lock): {differ}"


def test_optional_extras_are_exact_pins(pyproject):
    for extra, lines in pyproject["project"]["optional-dependencies"].items():
        parse_pins(lines, f"pyproject.toml [{extra}]")


def test_python_version_agrees(pyproject, environment_yml):
    assert sys.version_info[:2] == (3, 11)
    assert pyproject["project"]["requires-python"] == ">=3.11,<3.12"
    assert "python=3.11" in [d for d in environment_yml["dependencies"] if isinstance(d, str)]


def test_installed_versions_match_the_lock(lock_pins):
    wrong, missing = {}, []
    for name, version in lock_pins.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        if installed != version:
            wrong[name] = (version, installed)
    assert not missing, f"locked but not installed: {missing} (run `make venv`)"
    assert not wrong, f"installed versions differ from requirements.lock (locked, installed): {wrong}"


def test_parse_pins_rejects_loose_specifiers():
    with pytest.raises(AssertionError, match="not an exact"):
        parse_pins(["numpy>=2"], "example")
    with pytest.raises(AssertionError, match="pinned twice"):
        parse_pins(["numpy==2.0", "NumPy==2.0"], "example")
    assert parse_pins(["scikit_learn==1.9.1"], "example") == {"scikit-learn": "1.9.1"}
