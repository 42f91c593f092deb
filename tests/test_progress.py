"""course_lib.progress: the status line and the progress bar write exactly the text they promise, the
same whatever the terminal or the TQDM_* environment, nothing to stderr; tools/run_notebooks.py stores
a bar's final state in a way nbval compares equal to a fresh run (nbval's own stream handling is the
reference); and a notebook using both passes strict nbval after it is executed."""
import os
import pathlib
import subprocess
import sys

import nbformat
import pytest
from nbval.plugin import coalesce_streams

from course_lib import progress

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from run_notebooks import run, settle_streams  # noqa: E402


def expected_bar(desc, total, width=20):
    """The text of ``progress.bar`` over ``total`` items, written out by hand (total divides width)."""
    states = [f"\r{desc} |{'█' * (width * k // total)}{' ' * (width - width * k // total)}| {k}/{total}"
              for k in range(total + 1)]
    return "".join(states) + states[-1] + "\n"        # tqdm redraws the final state when it closes


def test_status_prints_at_once_then_done(capsys):
    with progress.status("training 3 seeds"):
        assert capsys.readouterr().out == "training 3 seeds ..."     # shown before the work starts
    assert capsys.readouterr() == (" done\n", "")


def test_status_says_failed_and_lets_the_exception_through(capsys):
    with pytest.raises(ZeroDivisionError):
        with progress.status("dividing"):
            1 / 0
    assert capsys.readouterr() == ("dividing ... failed\n", "")


def test_bar_writes_one_redraw_per_item_and_nothing_else(capsys):
    seen = list(progress.bar(iter("abcd"), "networks", total=4))
    assert seen == list("abcd")
    assert capsys.readouterr() == (expected_bar("networks", 4), "")
    assert list(progress.bar(range(5), "seeds")) == list(range(5))
    assert capsys.readouterr().out == expected_bar("seeds", 5)


def test_bar_has_no_monitor_thread_and_no_time_in_its_format():
    assert progress._Bar.monitor_interval == 0
    assert not any(f in progress.BAR_FORMAT for f in ("elapsed", "remaining", "rate", "eta"))


@pytest.mark.parametrize("env", [{}, {"COLUMNS": "12", "TQDM_NCOLS": "15", "TQDM_MININTERVAL": "30",
                                      "TQDM_DISABLE": "1", "TQDM_DELAY": "5", "TQDM_ASCII": "1"}])
def test_without_a_kernel_the_same_text_goes_to_stdout_whatever_the_environment(env):
    code = ("from course_lib import progress\n"
            "with progress.status('loading'):\n    pass\n"
            "for _ in progress.bar(range(4), 'epochs'):\n    pass\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120,   # bytes: keep \r
                            env={**os.environ, "PYTHONIOENCODING": "utf-8", **env})
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    assert result.stdout.decode("utf-8") == "loading ... done\n" + expected_bar("epochs", 4)


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="message must be a string"):
        with progress.status(3):
            pass
    with pytest.raises(ValueError, match="message must be one non-empty line"):
        with progress.status("two\nlines"):
            pass
    with pytest.raises(TypeError, match="desc must be a string"):
        progress.bar(range(3), None)
    with pytest.raises(ValueError, match="desc must be one non-empty line"):
        progress.bar(range(3), "  ")
    with pytest.raises(ValueError, match="total must be given"):
        progress.bar((i for i in range(3)), "gen")
    with pytest.raises(ValueError, match="total must be at least 1"):
        progress.bar([], "empty")
    with pytest.raises(TypeError, match="total must be an int"):
        progress.bar(range(3), "float", total=3.0)


def _stream(text, name="stdout"):
    return nbformat.v4.new_output("stream", name=name, text=text)


def _figure():
    return nbformat.v4.new_output("display_data", data={"text/plain": "<Figure>"})


BAR_PIECES = ["\r" + state for state in expected_bar("bar", 4).split("\r")[1:]]     # as ipykernel sends them


@pytest.mark.parametrize("pieces", [
    ["status ...", " done\n", *BAR_PIECES, "result\n"],
    ["\rbar |     | 0/2", "\rbar |██   | 1/2", "FIG", "\rbar |█████| 2/2", "\rbar |█████| 2/2\n", "after\n"],
    ["no carriage return\n", "FIG", "here\n"],
    ["a\rb\rc\n", "x\ry", "STDERR:warn\n", "\rz\n"],
])
def test_settled_streams_compare_equal_to_a_fresh_run_in_nbval(pieces):
    """run_notebooks stores settled streams; nbval coalesces the stored and the fresh outputs with its
    own function before comparing: both must give the same text."""
    def outputs():
        return [_figure() if p == "FIG" else _stream(p[7:], "stderr") if p.startswith("STDERR:") else _stream(p)
                for p in pieces]

    fresh = coalesce_streams(outputs())
    stored = settle_streams(outputs())
    assert coalesce_streams([nbformat.from_dict(o) for o in stored]) == fresh
    for out in stored:                    # what is stored keeps only final states
        if out["output_type"] == "stream":
            assert all("\r" not in line[1:] for line in out["text"].split("\n"))
    if "\r" not in "".join(pieces):
        assert stored == outputs()          # notebooks without redrawn lines are stored as before


def test_a_notebook_with_progress_is_stored_settled_and_passes_strict_nbval(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from course_lib import progress\n"
        "with progress.status('training 3 seeds'):\n    total = sum(range(10))\n"
        "for network in progress.bar(['plain', 'batchnorm', 'residual', 'residual+LN'], 'networks'):\n"
        "    pass\n"
        "print('total', total)")]
    path = tmp_path / "progress.ipynb"
    nbformat.write(nb, path)
    run(path, timeout=300)
    stored = nbformat.read(path, as_version=4).cells[0].outputs
    text = "".join(o["text"] for o in stored if o["output_type"] == "stream" and o["name"] == "stdout")
    assert "stderr" not in {o.get("name") for o in stored}
    final = expected_bar("networks", 4).split("\r")[-1]
    assert text == "training 3 seeds ... done\n" + final + "total 45\n"
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-p",
                             "no:cacheprovider", "-q", "--nbval-sanitize-with",
                             str(ROOT / "tests" / "nbval_sanitize.cfg"), str(path)],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
