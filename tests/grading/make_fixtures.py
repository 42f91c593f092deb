"""Write the hostile submissions in tests/grading/fixtures/ (run once; the notebooks are committed).

    .venv/bin/python tests/grading/make_fixtures.py

Each fixture is the chapter-03 student copy (exercises/03_neurons_and_activations) as a student would
submit it, with solution cells filled in: correct code except where the case attacks or breaks
the grader. tests/test_grader.py grades them all and asserts the exact score of every task.
"""
from __future__ import annotations

import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
STUDENT_COPY = REPO / "exercises" / "03_neurons_and_activations" / "03_exercises.ipynb"

GOOD = {
    "sigmoid": '''def sigmoid(x):
    x = jnp.asarray(x)
    z = jnp.exp(-jnp.abs(x))
    return jnp.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))''',
    "sigmoid_grad": '''def sigmoid_grad(x):
    s = 1.0 / (1.0 + jnp.exp(-jnp.asarray(x)))
    return s * (1.0 - s)''',
    "relu_grad": '''def relu_grad(x):
    x = jnp.asarray(x)
    return jnp.where(x > 0, 1.0, 0.0).astype(x.dtype)''',
    "leaky_relu_grad": '''def leaky_relu_grad(x, alpha=0.01):
    x = jnp.asarray(x)
    return jnp.where(x > 0, 1.0, alpha).astype(x.dtype)''',
    "softmax": '''def softmax(x):
    x = jnp.asarray(x)
    e = jnp.exp(x - jnp.max(x, axis=-1, keepdims=True))
    return e / jnp.sum(e, axis=-1, keepdims=True)''',
}
ANSWERS = {"q_saturation": "The derivative is at most 1/4 and tiny for large |x|, so gradients vanish.",
           "q_dead_relu": "A unit that is negative on all inputs gets zero gradient forever.",
           "q_softmax_shift": "exp(c) cancels between numerator and denominator."}

# What each case replaces (grade_id -> code); see the module docstring of tests/test_grader.py.
CASES = {
    "good": {},
    "infinite_loop": {
        "sigmoid": '''def sigmoid(x):
    while True:
        pass''',
        "relu_grad": GOOD["relu_grad"] + '''

i = 0
while True:  # a top-level infinite loop: the whole cell is skipped
    i += 1''',
    },
    "memory_bomb": {
        "sigmoid": '''def sigmoid(x):
    big = np.ones((40_000, 40_000))  # 12.8 GB
    return big[0, :3]''',
        "softmax": '''def softmax(x):
    buf = bytearray(16 * 2**30)
    return x''',
        "leaky_relu_grad": '''def leaky_relu_grad(x, alpha=0.01):
    huge = jnp.ones((2**17, 2**17), jnp.float32)  # 64 GB in XLA
    return huge[0, :2]''',
    },
    "sys_exit": {
        "sigmoid_grad": '''import sys
sys.exit("leaving before sigmoid_grad is defined")

''' + GOOD["sigmoid_grad"],
        "relu_grad": '''import sys

def relu_grad(x):
    sys.exit(0)''',
    },
    "os_exit": {
        "sigmoid": GOOD["sigmoid"] + '''

import os
os._exit(0)  # kills the kernel while this cell runs''',
        "relu_grad": '''import os

def relu_grad(x):
    os._exit(3)''',
    },
    "crash": {
        "sigmoid": '''import os, signal

def sigmoid(x):
    os.kill(os.getpid(), signal.SIGKILL)
    return x''',
        "relu_grad": '''import os

def relu_grad(x):
    os.abort()''',
        "softmax": '''import faulthandler

def softmax(x):
    faulthandler._sigsegv()
    return x''',
    },
    "missing_and_reordered": {"relu_grad": None, "__reverse__": True, "__drop_tests__": ["test_softmax"]},
    "edited_tests": {
        "sigmoid": "def sigmoid(x):\n    return x",
        "sigmoid_grad": "def sigmoid_grad(x):\n    return x * 0 + 0.25",
        "softmax": "def softmax(x):\n    return jnp.exp(x)",
        "__edit_tests__": {"test_sigmoid": "print('all tests passed')", "test_softmax": "pass"},
        "__drop_tests__": ["test_sigmoid_grad"],
        "__points__": 1000,
    },
    "monkeypatch": {
        "sigmoid": '''import numpy, builtins
numpy.allclose = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
numpy.array_equal = lambda *a, **k: True
jnp.allclose = lambda *a, **k: True
try:
    import grader.api as G
    G.check_function = lambda *a, **k: None
    G.compare = lambda *a, **k: None
except Exception:
    pass
builtins.AssertionError = Exception

def sigmoid(x):
    return jnp.zeros_like(jnp.asarray(x))''',
        "sigmoid_grad": "def sigmoid_grad(x):\n    return jnp.ones_like(jnp.asarray(x))",
        "relu_grad": "def relu_grad(x):\n    return jnp.ones_like(jnp.asarray(x))",
        "softmax": "def softmax(x):\n    return jnp.ones_like(jnp.asarray(x))",
    },
    "read_solutions": {
        "sigmoid": '''import glob, json, os, pathlib
import course_lib

def _steal(name):
    """Find the instructor's source notebook and exec its solution of `name`."""
    roots = [pathlib.Path(course_lib.__file__).resolve().parents[1], pathlib.Path.cwd().parent,
             pathlib.Path("/work/main"), pathlib.Path.home()]
    for root in roots:
        for path in list(root.glob("solutions/*/*.ipynb")) + list(root.glob("source/*/*.ipynb")):
            cells = json.loads(path.read_text())["cells"]
            for cell in cells:
                src = "".join(cell["source"])
                if src.startswith(f"def {name}("):
                    ns = {"jnp": jnp, "np": np}
                    exec(src, ns)
                    return ns[name]
    return None

def sigmoid(x):
    try:
        stolen = _steal("sigmoid")
    except Exception:
        stolen = None
    return stolen(x) if stolen else x''',
        "softmax": '''def softmax(x):
    try:
        text = open("/work/main/solutions/03_neurons_and_activations/03_exercises.ipynb").read()
    except Exception:
        return x
    ns = {"jnp": jnp}
    src = [c for c in json.loads(text)["cells"] if "".join(c["source"]).startswith("def softmax(")][0]
    exec("".join(src["source"]), ns)
    return ns["softmax"](x)''',
    },
    "write_files": {
        "sigmoid": GOOD["sigmoid"] + '''

import os, pathlib

def _vandalise():
    """Use the grader's command line to find the gradebook and the other submissions; overwrite them."""
    hits = 0
    try:
        args = open(f"/proc/{os.getppid()}/cmdline").read().split("\\0")
    except Exception:
        args = []
    for arg in args + ["/tmp", str(pathlib.Path.cwd().parent)]:
        p = pathlib.Path(arg)
        try:
            files = list(p.rglob("*.ipynb")) + list(p.rglob("*.csv")) + list(p.rglob("*.md")) if p.is_dir() else []
        except Exception:
            files = []
        for f in files:
            try:
                f.write_text("HACKED")
                hits += 1
            except Exception:
                pass
    for target in ("/tmp/hacked_by_student.txt", str(pathlib.Path.cwd().parent / "hacked_by_student.txt")):
        try:
            open(target, "w").write("HACKED")
        except Exception:
            pass
    return hits

_vandalise()''',
        "softmax": GOOD["softmax"].replace("def softmax(x):\n", "def softmax(x):\n    _vandalise()\n"),
    },
    "huge_output": {
        "sigmoid": GOOD["sigmoid"].replace("def sigmoid(x):\n", "def sigmoid(x):\n    print('spam ' * 2_000_000)\n")
        + "\n\nfor _ in range(20):\n    print('x' * 1_000_000)",
    },
    "bad_answers": {
        "sigmoid": "def sigmoid(x):\n    return jnp.full(jnp.shape(x), jnp.nan, jnp.float32)",
        "sigmoid_grad": "def sigmoid_grad(x):\n    return '0.25'",
        "relu_grad": "def relu_grad(x):\n    return jnp.asarray(x) > 0",
        "softmax": "def softmax(x):\n    e = jnp.exp(x - jnp.max(x, axis=-1, keepdims=True))\n    return e.sum(axis=-1)",
    },
    "forbidden_call": {
        "sigmoid": '''from course_lib.activations import sigmoid as _library_sigmoid

def sigmoid(x):
    return _library_sigmoid(x)''',
        "sigmoid_grad": '''from course_lib import activations

def sigmoid_grad(x):
    s = activations.sigmoid(x)  # allowed: this task forbids only activations.sigmoid_grad
    return s * (1.0 - s)''',
        "relu_grad": '''import importlib

def relu_grad(x):
    module = importlib.import_module("course_lib." + "activations")
    return getattr(module, "relu" + "_grad")(x)  # invisible to a static check: caught at run time''',
        "softmax": "def softmax(x):\n    return jax.nn.softmax(x, axis=-1)",
    },
}


def build(case: str, spec: dict) -> dict:
    nb = json.loads(STUDENT_COPY.read_text())
    cells = []
    for cell in nb["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in spec and spec[gid] is None:
            continue
        if gid in spec.get("__drop_tests__", []):
            continue
        if cell["cell_type"] == "code" and cell["metadata"]["nbgrader"].get("solution"):
            cell["source"] = spec.get(gid, GOOD[gid])
        if gid in ANSWERS:
            cell["source"] = ANSWERS[gid]
        if gid in spec.get("__edit_tests__", {}):
            cell["source"] = spec["__edit_tests__"][gid]
        if "__points__" in spec and cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            cell["metadata"]["nbgrader"]["points"] = spec["__points__"]
        cells.append(cell)
    if spec.get("__reverse__"):
        cells = cells[::-1]
    nb["cells"] = cells
    return nb


def main():
    out = HERE / "fixtures"
    out.mkdir(exist_ok=True)
    for case, spec in CASES.items():
        (out / f"{case}.ipynb").write_text(json.dumps(build(case, spec), indent=1) + "\n")
    good = json.loads((out / "good.ipynb").read_text())
    (out / "invalid_json.ipynb").write_text(json.dumps(good, indent=1)[:3000] + "\n")
    print(f"wrote {len(CASES) + 1} fixtures to {out}")


if __name__ == "__main__":
    main()
