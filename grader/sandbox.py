"""Trusted side of the sandbox: one bubblewrap sandbox per submission, fresh children forked in it.

Each submission gets its own operating-system sandbox, made by bubblewrap (``bwrap``): new user,
pid, mount, network, IPC and UTS namespaces; uid/gid 65534 (``nobody``) without capabilities; no
network; a root file system that holds only read-only binds of ``/usr``, the Python installation,
``course_lib`` and ``grader``, a minimal ``/dev`` and a private ``/tmp`` (tmpfs, size-limited). The
sandbox's first process (pid 1 of its namespace) is a zygote (``grader/_child.py``) that imports
JAX once; the kernel ends every process of the sandbox when the zygote ends, and the zygote ends
with this process (``--die-with-parent``). For each phase of the grading the zygote forks a fresh
child that sets kernel-enforced limits (address space, CPU time, file size, processes, open files),
a seccomp filter (no new processes, no exec, no ptrace) and the audit hook (a second layer), then
runs the student's cells. A cell or call that hangs or kills its child costs that cell or call and
a new child is forked; if the zygote itself goes, a new sandbox is started.

Where bubblewrap cannot run, :func:`sandbox_problem` says why; ``Limits(sandbox=False)`` (the
command's ``--no-sandbox``) then runs the same zygote without the operating-system layer.
"""
from __future__ import annotations

import builtins
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time

from . import _child
from .api import StudentCodeError

CHILD = pathlib.Path(_child.__file__).resolve()
REPO = CHILD.parents[1]
BWRAP_ENV = "GRADER_BWRAP"              # path of the bwrap program (default: bwrap on the PATH)
SANDBOX_UID = 65534                     # nobody
SANDBOX_TMP = "/tmp"                    # inside the sandbox: a private tmpfs
SANDBOX_CACHE = "/var/cache/grader-jax"  # inside the sandbox: the compile cache (read-only for students)
XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


class SandboxUnavailable(RuntimeError):
    """The operating-system sandbox cannot run here; the message names the cause."""


class NeedOwnChild(BaseException):
    """A shared child ran a stub of a function that the current task does not forbid: the task must
    run again in a child of its own (a BaseException, so test helpers do not turn it into a failure)."""

    def __init__(self, names):
        super().__init__(", ".join(sorted(names)))
        self.names = set(names)


class Limits:
    def __init__(self, timeout=20.0, memory_mb=2048, budget=180.0, cache_dir=None, sandbox=True, bwrap=None,
                 processes=256, tmp_mb=64):
        self.timeout = float(timeout)        # seconds per cell and per call
        self.memory_mb = int(memory_mb)      # address-space limit of each child
        self.budget = float(budget)          # total seconds of sandbox time per submission
        self.cache_dir = cache_dir           # JAX compile cache: written by the warm-up, read-only for students
        self.sandbox = bool(sandbox)         # False: no operating-system sandbox (--no-sandbox)
        self.bwrap = bwrap                   # path of bwrap (None: $GRADER_BWRAP or bwrap on the PATH)
        self.processes = int(processes)      # RLIMIT_NPROC of the sandbox's user (threads count)
        self.tmp_mb = int(tmp_mb)            # size of the sandbox's private /tmp
        self.audit_hook = True               # the second layer (tests switch it off to check the first alone)
        self.run_dir = None                  # parent folder of the zygotes' logs and unsandboxed work folders

    def bwrap_path(self) -> str | None:
        return self.bwrap or os.environ.get(BWRAP_ENV) or shutil.which("bwrap")


# ----------------------------------------------------------------------------- what the sandbox sees
def _mount_roots(check=True) -> list[str]:
    """Folders bound read-only into the sandbox: the Python installation, course_lib and grader."""
    import course_lib

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             str(pathlib.Path(course_lib.__file__).resolve().parent), str(CHILD.parent)}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        roots.add(sysconfig.get_paths()[key])
    roots = sorted({os.path.realpath(r) for r in roots if r and os.path.isdir(r)})
    out = []
    for r in roots:  # sorted: a folder comes before the folders inside it
        if r == "/usr" or r.startswith("/usr/") or any(r.startswith(o + "/") for o in out):
            continue
        out.append(r)
    home = os.path.realpath(os.path.expanduser("~"))
    for r in out if check else ():
        for secret, what in ((str(REPO), "the project folder"), (home, "the home folder")):
            if secret == r or secret.startswith(r.rstrip("/") + "/"):
                raise SandboxUnavailable(f"the Python installation at {r} contains {what} ({secret}); the sandbox "
                                         f"would show it to submissions: use a virtual environment (make venv)")
    return out


def _read_roots(cache_dir=None) -> list[str]:
    """What the audit hook lets the child read (the sandbox shows nothing else anyway)."""
    roots = list(_mount_roots(check=False))
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        roots.append(os.path.realpath(sysconfig.get_paths()[key]))
    if cache_dir:
        roots.append(str(cache_dir))
    return sorted(set(roots))


def _env(home: str, cache: str | None) -> dict:
    env = {
        "PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "USER": "nobody", "LANG": "C.UTF-8",
        "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3", "XLA_FLAGS": XLA_FLAGS, "COURSE_LIB_CPU_DEVICES": "1",
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg", "MPLCONFIGDIR": home, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
    }
    if cache:
        env.update({"JAX_COMPILATION_CACHE_DIR": cache, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"})
    return env


def bwrap_command(limits: Limits, *, cache_writable=False, with_cache=True) -> list[str]:
    """The bwrap command line (up to and including ``--``) for one submission's sandbox."""
    cache = limits.cache_dir if with_cache else None
    args = [limits.bwrap_path() or "bwrap",
            "--unshare-all", "--unshare-user", "--disable-userns", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--hostname", "sandbox", "--die-with-parent", "--new-session", "--as-pid-1", "--cap-drop", "ALL",
            "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    for root in _mount_roots():
        args += ["--ro-bind", root, root]
    args += ["--dev", "/dev", "--remount-ro", "/dev", "--size", str(limits.tmp_mb * 2**20), "--tmpfs", SANDBOX_TMP]
    if cache:
        args += ["--bind" if cache_writable else "--ro-bind", str(cache), SANDBOX_CACHE]
    args += ["--remount-ro", "/", "--chdir", SANDBOX_TMP, "--clearenv"]
    for k, v in _env(SANDBOX_TMP, SANDBOX_CACHE if cache else None).items():
        args += ["--setenv", k, v]
    return args + ["--"]


_PROBED: dict = {}


def sandbox_problem(limits: Limits) -> str | None:
    """Why the operating-system sandbox cannot run here (None: it can). Runs bwrap once to find out."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux; this is {sys.platform}"
    path = limits.bwrap_path()
    if not path:
        return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return f"bubblewrap was not found at {path} (apt-get install bubblewrap)"
    key = (path, limits.tmp_mb)
    if key not in _PROBED:
        try:
            cmd = bwrap_command(limits, with_cache=False)
        except SandboxUnavailable as exc:
            return str(exc)
        try:
            proc = subprocess.run(cmd + [sys.executable, "-I", "-c", "import os; assert os.getuid() == %d" % SANDBOX_UID],
                                  capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            _PROBED[key] = None if proc.returncode == 0 else (
                f"bubblewrap ({path}) cannot create a sandbox here: "
                f"{(proc.stderr.strip() or f'exit status {proc.returncode}')[-300:]} "
                f"(it needs user namespaces: sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0)")
        except (OSError, subprocess.TimeoutExpired) as exc:
            _PROBED[key] = f"bubblewrap ({path}) could not be started: {exc}"
    return _PROBED[key]


# ----------------------------------------------------------------------------- the zygote
class Zygote:
    """A zygote process (``_child.py --zygote``), in its own bubblewrap sandbox unless sandbox=False.

    Messages on the control socket (a datagram socket pair) are JSON objects; what the zygote says is
    checked like anything else that comes from the sandbox.
    """

    def __init__(self, limits: Limits, config: dict, *, cache_writable=False):
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = mine
        self.log = tempfile.NamedTemporaryFile(prefix="zygote-", suffix=".log", dir=limits.run_dir, delete=False)
        self.workdir = None
        fd = theirs.fileno()
        tail = [sys.executable, "-I", str(CHILD), "--zygote", str(fd), json.dumps(config)]
        try:
            if limits.sandbox:
                cmd, env, cwd = bwrap_command(limits, cache_writable=cache_writable) + tail, {"PATH": "/usr/bin:/bin"}, "/"
            else:
                self.workdir = tempfile.mkdtemp(prefix="grader-unsandboxed-", dir=limits.run_dir)
                cmd, env, cwd = tail, _env(self.workdir, str(limits.cache_dir) if limits.cache_dir else None), self.workdir
            self.proc = subprocess.Popen(cmd, pass_fds=[fd], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=self.log, cwd=cwd, env=env, start_new_session=True, umask=0o077)
        finally:
            theirs.close()
        self.lock = threading.Lock()
        self.cond = threading.Condition()
        self.forked: list[int] = []
        self.codes: dict[int, int] = {}
        self.cpu: dict[int, float] = {}     # CPU seconds of each child that ended (as the zygote says)
        self.alive = True
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            try:
                data = self.sock.recv(4096)
                msg = json.loads(data) if data else None
            except (OSError, ValueError):
                msg = None
            if not isinstance(msg, dict):
                with self.cond:
                    self.alive = False
                    self.cond.notify_all()
                return
            pid, op = msg.get("pid"), msg.get("op")
            if not isinstance(pid, int):
                continue
            with self.cond:
                if op == "forked":
                    self.forked.append(pid)
                elif op == "exit" and isinstance(msg.get("code"), int):
                    self.codes[pid] = msg["code"]
                    if isinstance(msg.get("cpu"), (int, float)):
                        self.cpu[pid] = float(msg["cpu"])
                self.cond.notify_all()

    def fork(self, timeout: float):
        """Return (pid, fd to write requests to, fd to read answers from) of a new child."""
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        try:
            with self.lock:
                socket.send_fds(self.sock, [b'{"op": "fork"}'], [req_r, resp_w])
                with self.cond:
                    if not self.cond.wait_for(lambda: self.forked or not self.alive, timeout):
                        raise OSError("the sandbox did not start in time")
                    if not self.forked:
                        raise OSError("the sandbox ended: " + self.reason())
                    pid = self.forked.pop(0)
        except BaseException:
            for fd in (req_w, resp_r):
                os.close(fd)
            raise
        finally:
            os.close(req_r)
            os.close(resp_w)
        return pid, req_w, resp_r

    def kill(self, pid: int):
        try:
            self.sock.send(json.dumps({"op": "kill", "pid": pid}).encode())
        except OSError:
            pass

    def wait(self, pid: int, timeout: float):
        with self.cond:
            if not self.cond.wait_for(lambda: pid in self.codes or not self.alive, timeout):
                return None
            return self.codes.pop(pid, None)

    def reason(self) -> str:
        try:
            with open(self.log.name, errors="replace") as f:
                text = f.read()[-400:].strip()
        except OSError:
            text = ""
        code = self.proc.poll()
        return (text.splitlines()[-1] if text else "") or (f"exit status {code}" if code is not None else "no answer")

    def close(self):
        """End the sandbox: the zygote ends its children and leaves when its socket closes (so that
        their CPU time is accounted); if it does not within 5 s, bwrap is killed, and the kernel ends
        every process of the sandbox with it."""
        try:  # shutdown, not only close: the reader thread's pending recv would keep the socket open
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            try:  # bwrap (or the unsandboxed zygote) leads its own process group
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


# ----------------------------------------------------------------------------- one submission
_SAFE_EXCEPTIONS = {n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)} | {
    "XlaRuntimeError", "JaxRuntimeError", "ConcretizationTypeError", "TracerBoolConversionError",
    "TracerArrayConversionError", "TracerIntegerConversionError", "UnexpectedTracerError", "LinAlgError",
    "AxisError", "NotImplementedError", "GraderError"}


class Sandbox:
    """Runs ``cells`` (list of dicts id/source) of one submission; answers calls of its names.

    :meth:`use` says in which child the next calls run: children are identified by a key; asking for
    another key ends the current child, and the next call forks a fresh one from the pristine zygote,
    with the functions of ``stubs`` replaced by stubs. Calls that run a stub of a function outside
    ``task_forbid`` raise :class:`NeedOwnChild` (the task must run in a child of its own). In hidden
    mode, nothing the student's code chose (exception messages, class names) is passed on.
    """

    def __init__(self, cells, *, forbid=(), preimport=(), limits: Limits | None = None, trusted: bool = False):
        self.cells = list(cells)
        self.forbid = sorted(set(forbid))     # everything the assignment forbids somewhere
        self.preimport = list(preimport)
        self.limits = limits or Limits()
        self.trusted = trusted                # the instructor's own notebook: may write the compile cache
        self.skip: dict[str, str] = {}        # cell id -> why it was skipped
        self.cell_errors: dict[str, str] = {}  # cell id -> exception the cell raised
        self.used = 0.0
        self.restarts = 0                     # children that failed while running the cells
        self.zygote_starts = 0
        self.output_chars = 0
        self.broken = None                    # reason the sandbox cannot run at all
        self.isolated = False                 # the last child ran in the operating-system sandbox
        self.seccomp = False                  # ... with its seccomp filter
        self.children = 0                     # children forked so far
        self.zygote: Zygote | None = None
        self.proc = None                      # the current child: (pid, request file, answer fd)
        self.key = None
        self.want = (("all",), self.forbid, set(self.forbid))
        self.hidden = False
        self.cells_fired: set[str] = set()    # stubs that the current child's cells ran
        self.last_forbidden: set[str] = set()

    # -- choosing the child
    def use(self, key, stubs, task_forbid=None, hidden=False):
        """Run the next calls in the child ``key``, forked with ``stubs`` if it is new."""
        stubs = sorted(set(stubs))
        self.want = (key, stubs, set(stubs if task_forbid is None else task_forbid))
        self.hidden = bool(hidden)
        if self.proc is not None and self.key != key:
            self._end_child(wait=False)

    # -- process management
    def _zygote(self) -> Zygote:
        if self.zygote is not None and self.zygote.alive and self.zygote.proc.poll() is None:
            return self.zygote
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None
        self.zygote_starts += 1
        if self.zygote_starts > 3:
            raise OSError("the sandbox had to be started again too often")
        config = {"preimport": self.preimport, "forbid": self.forbid, "grader_dir": str(CHILD.parent)}
        self.zygote = Zygote(self.limits, config, cache_writable=self.trusted)
        return self.zygote

    def _spawn(self):
        key, stubs, _ = self.want
        while True:
            zygote = self._zygote()
            try:
                pid, req_w, resp_r = zygote.fork(timeout=90)
                break
            except OSError:
                if self.zygote_starts >= 3:
                    raise
                zygote.close()  # a new sandbox next time round
                self.zygote = None
        self.proc = (pid, os.fdopen(req_w, "wb"), resp_r)
        self.key = key
        self.children += 1
        self.cells_fired = set()
        sandboxed = self.limits.sandbox
        cache = (SANDBOX_CACHE if sandboxed else str(self.limits.cache_dir)) if self.limits.cache_dir else None
        workdir = SANDBOX_TMP if sandboxed else zygote.workdir
        cells = [c for c in self.cells if c["id"] not in self.skip]
        init = {"cells": cells, "forbid": stubs, "workdir": workdir, "fresh_workdir": True,
                "read_roots": _read_roots(cache), "write_roots": [cache] if self.trusted and cache else [],
                "grader_dir": str(CHILD.parent), "isolated": sandboxed, "audit_hook": self.limits.audit_hook,
                "limits": {"memory_bytes": self.limits.memory_mb * 2**20, "cpu_seconds": int(self.limits.budget) + 10,
                           "file_bytes": 32 * 2**20, "processes": self.limits.processes}}
        self._send(init)

    def _send(self, header, chunks=()):
        self.proc[1].write(_child.pack(header, chunks))
        self.proc[1].flush()

    def _recv(self, timeout):
        deadline = time.monotonic() + min(timeout, max(0.5, self.limits.budget - self.used))
        return _child.read_message(self.proc[2], deadline)

    def _end_child(self, wait=True):
        """Kill the current child (through its zygote); with ``wait``, until it is gone."""
        if self.proc is None:
            return None
        pid, stdin, stdout = self.proc
        self.proc = None
        code = None
        if self.zygote is not None:
            self.zygote.kill(pid)
            if wait:
                code = self.zygote.wait(pid, 10)
                if code is None:  # the zygote does not answer: end the whole sandbox
                    self.zygote.close()
                    self.zygote = None
        for closer in (stdin.close, lambda: os.close(stdout)):
            try:
                closer()
            except OSError:
                pass
        return code

    def kill(self):
        self._end_child(wait=False)
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None

    close = kill

    def _death_reason(self) -> str:
        pid = self.proc[0]
        code = self.zygote.wait(pid, 3) if self.zygote is not None else None
        if code is None:
            return "stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            extra = " (CPU time limit)" if name == "SIGXCPU" else ""
            return f"the process was killed by {name}{extra}"
        return f"the process exited with code {code} (sys.exit/os._exit?)"

    def start(self):
        """Fork the child if needed and run the cells; skip a cell that hangs or kills it, and retry."""
        while self.proc is None:
            if self.broken:
                raise StudentCodeError("crashed", self.broken)
            if self.used >= self.limits.budget:
                self.broken = "the submission used up its total time budget"
                raise StudentCodeError("timeout", self.broken)
            if self.restarts > 8 + len(self.cells):
                self.broken = "the sandbox had to be restarted too often"
                raise StudentCodeError("crashed", self.broken)
            t0 = time.monotonic()
            current = None
            try:
                try:
                    self._spawn()
                except OSError as exc:
                    self.broken = f"the sandbox failed before running your code: {exc}"
                    continue
                first = True
                while True:
                    header, _ = self._recv(self.limits.timeout + (60 if first else 0))
                    first = False
                    op = header.get("op")
                    if op == "cell_start":
                        current = str(header.get("id"))
                    elif op == "cell_done":
                        if header.get("error"):
                            self.cell_errors[str(header.get("id"))] = str(header["error"])[:300]
                        current = None
                    elif op == "ready":
                        self.output_chars = int(header.get("output_chars", 0) or 0)
                        self.isolated = bool(header.get("isolated"))
                        self.seccomp = bool(header.get("seccomp"))
                        fired = header.get("forbidden")
                        self.cells_fired = {str(f) for f in fired} if isinstance(fired, list) else set()
                        break
                    else:
                        raise ValueError("unexpected message")
            except TimeoutError:
                self._end_child()
                self.restarts += 1
                if current is None:
                    self.broken = "the sandbox did not start in time"
                    continue
                self.skip[current] = f"cell {current} did not finish within {self.limits.timeout:g} s"
            except (EOFError, ValueError, OSError) as exc:
                reason = self._death_reason() if self.proc is not None else str(exc)
                self._end_child()
                self.restarts += 1
                if current is None:
                    self.broken = f"the sandbox failed before running your code: {reason}"
                    continue
                self.skip[current] = f"cell {current} stopped the kernel: {reason}"
            finally:
                self.used += time.monotonic() - t0

    def request(self, op, name, args=(), kwargs=None, refs=None):
        self.start()
        t0 = time.monotonic()
        try:
            spec_a, chunks_a = _child.encode(tuple(args), refs=refs)
            spec_k, chunks_k = _child.encode(dict(kwargs or {}), refs=refs)
            # kwargs offsets follow the args' bytes
            shift = sum(len(c) for c in chunks_a)
            _shift(spec_k, shift)
            self._send({"op": op, "name": name, "args": spec_a, "kwargs": spec_k}, chunks_a + chunks_k)
            header, payload = self._recv(self.limits.timeout)
        except TimeoutError:
            self._end_child()
            raise StudentCodeError("timeout", f"{name} did not return within {self.limits.timeout:g} s "
                                   f"(infinite loop?)") from None
        except (EOFError, OSError):
            reason = self._death_reason() if self.proc is not None else "the process died"
            self._end_child()
            raise StudentCodeError("crashed", f"calling {name} crashed the kernel: {reason}") from None
        except ValueError as exc:
            self._end_child()
            raise StudentCodeError("error", f"{name}: the sandbox sent an unreadable answer ({exc})") from None
        finally:
            self.used += time.monotonic() - t0
        _, stubs, task_forbid = self.want
        fired = header.get("forbidden") or []
        fired = ({str(f) for f in fired} if isinstance(fired, list) else set()) | self.cells_fired
        if fired - task_forbid and set(stubs) - task_forbid:
            raise NeedOwnChild(fired - task_forbid)
        self.last_forbidden = fired & task_forbid
        if header.get("op") == "error":
            kind = header.get("kind") if header.get("kind") in ("error", "missing", "unsupported") else "error"
            exc_type, msg = str(header.get("type", ""))[:60], str(header.get("message", ""))[:500]
            if self.last_forbidden:
                raise StudentCodeError("forbidden", f"{name} calls {', '.join(sorted(self.last_forbidden))}, which "
                                       f"this task forbids (write it yourself)")
            if self.hidden:  # the student's own text could carry what a hidden test sent: pass on none of it
                exc_type = exc_type if exc_type in _SAFE_EXCEPTIONS else "an exception of its own class"
                # ``detail`` (the message) stays in this process: check_raises matches it against the task's
                # pattern and reports only whether it matched, never the text
                raise StudentCodeError(kind, f"{name}: {kind} ({exc_type})" if kind == "error" else f"{name}: {kind}",
                                       exc_type if kind == "error" else "", msg if kind == "error" else "")
            detail = msg if kind == "error" else ""
            if kind == "missing":
                msg = self._missing_hint(name, msg)
            elif exc_type == "MemoryError":
                msg = f"MemoryError: your code tried to use more than {self.limits.memory_mb} MB"
            else:
                msg = f"{exc_type}: {msg}" if kind == "error" else msg
            raise StudentCodeError(kind, msg, exc_type if kind == "error" else "", detail)
        if header.get("op") != "result":
            self._end_child()
            raise StudentCodeError("error", "the sandbox sent an unexpected answer")
        try:
            return _child.decode(header.get("value"), payload)
        except Exception as exc:
            raise StudentCodeError("unsupported", f"{name} returned something the grader cannot read"
                                   + ("" if self.hidden else f": {exc}"))

    def _missing_hint(self, name, msg):
        notes = list(self.skip.values())
        notes += [f"cell {cid} raised {err}" for cid, err in self.cell_errors.items()]
        return msg + (" - " + "; ".join(notes) if notes else "")


def _shift(spec, by):
    if isinstance(spec, dict):
        if spec.get("t") == "arr":
            spec["off"] += by
        for item in spec.get("items", []) or []:
            _shift(item[1] if isinstance(item, list) else item, by)


class RemoteFunction:
    """Stands for a name defined by the student's solution cells, inside the trusted test cell."""

    _grader_remote = True

    def __init__(self, sandbox: Sandbox, name: str, refs_by_id=None):
        self._sandbox = sandbox
        self.__name__ = name
        self._refs = refs_by_id or {}
        self.last_forbidden_calls = set()

    def __call__(self, *args, **kwargs):
        self.last_forbidden_calls = set()
        self._sandbox.last_forbidden = set()
        try:
            return self._sandbox.request("call", self.__name__, args, kwargs, refs=self._refs)
        finally:
            self.last_forbidden_calls = set(getattr(self._sandbox, "last_forbidden", set()))

    def _grader_fetch(self):
        return self._sandbox.request("get", self.__name__)

    def __repr__(self):
        return f"<student function {self.__name__}>"
