"""Trusted side of the sandbox: start the child, run the student's cells, call their functions.

One :class:`Sandbox` per submission. The child (``grader/_child.py``) runs in a fresh temporary
directory with resource limits (address space, CPU time, file size), a wall-clock timeout per cell
and per call, its output discarded, an audit hook that refuses reads outside the installed packages
and writes outside its directory, and - when the grader runs as root - as an unprivileged user that
owns nothing else. If a cell hangs or kills the process, the child is restarted without that cell;
if a call hangs or kills it, that call fails and the next call restarts it.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time

from . import _child
from .api import StudentCodeError

CHILD = pathlib.Path(_child.__file__).resolve()


class Limits:
    def __init__(self, timeout=20.0, memory_mb=2048, budget=180.0, uid=None, cache_dir=None, fork_server=True):
        self.timeout = float(timeout)        # seconds per cell and per call
        self.memory_mb = int(memory_mb)      # address-space limit of the child
        self.budget = float(budget)          # total seconds of child time per submission
        self.uid = uid                       # run the child as this uid (None: the grader's own)
        self.cache_dir = cache_dir           # JAX compilation cache: read-only for students
        self.fork_server = fork_server       # fork children from a process that has imported JAX
        self.hide: list[str] = []            # folders the child must not see (set by the Grader)
        self.run_dir = None                  # parent folder of the sandboxes' working folders


def _read_roots(cache_dir=None) -> list[str]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        roots.add(sysconfig.get_paths()[key])
    import course_lib

    if cache_dir:
        roots.add(str(cache_dir))
    roots.add(str(pathlib.Path(course_lib.__file__).resolve().parent))
    roots.add(str(pathlib.Path(__file__).resolve().parent))
    return sorted(os.path.realpath(r) for r in roots)


def _child_env(workdir: str, cache_dir=None) -> dict:
    env = {
        "PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
        "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "1",
        "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
        "MPLBACKEND": "Agg", "MPLCONFIGDIR": workdir, "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }
    if cache_dir:
        env.update({"JAX_COMPILATION_CACHE_DIR": str(cache_dir), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"})
    return env


class Zygote:
    """A fork server (``_child.py --zygote``) that has imported NumPy and JAX once.

    Forking a ready process per submission saves starting Python and importing JAX (1-5 s each).
    Only trusted code runs in it; each forked child then limits itself and runs one submission.
    """

    def __init__(self, cache_dir=None):
        import json
        import socket

        self._json = json
        self.workdir = tempfile.mkdtemp(prefix="grader-zygote-")
        mine, theirs = socket.socketpair()
        self.sock = mine
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(CHILD), "--zygote", str(theirs.fileno())], pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir,
            env=_child_env(self.workdir, cache_dir), start_new_session=True, umask=0o077)
        theirs.close()
        self.lock = threading.Lock()
        self.cond = threading.Condition()
        self.forked: list[int] = []
        self.codes: dict[int, int] = {}
        self.alive = True
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self.cond:
                    self.alive = False
                    self.cond.notify_all()
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = self._json.loads(line)
                with self.cond:
                    if msg.get("op") == "forked":
                        self.forked.append(int(msg["pid"]))
                    elif msg.get("op") == "exit":
                        self.codes[int(msg["pid"])] = int(msg["code"])
                    self.cond.notify_all()

    def fork(self, timeout=60.0):
        """Return (pid, fd to write requests to, fd to read answers from) of a new child."""
        import socket

        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        try:
            with self.lock:
                socket.send_fds(self.sock, [b"fork"], [req_r, resp_w])
                with self.cond:
                    if not self.cond.wait_for(lambda: self.forked or not self.alive, timeout):
                        raise OSError("the fork server did not answer")
                    if not self.forked:
                        raise OSError("the fork server is gone")
                    pid = self.forked.pop(0)
        except BaseException:
            for fd in (req_w, resp_r):
                os.close(fd)
            raise
        finally:
            os.close(req_r)
            os.close(resp_w)
        return pid, req_w, resp_r

    def wait(self, pid, timeout):
        with self.cond:
            if not self.cond.wait_for(lambda: pid in self.codes or not self.alive, timeout):
                return None
            return self.codes.pop(pid, None)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


class _ForkedProc:
    """The parts of subprocess.Popen that Sandbox uses, for a child forked by a Zygote."""

    def __init__(self, zygote, pid, req_w, resp_r):
        self.zygote, self.pid = zygote, pid
        self.stdin = os.fdopen(req_w, "wb")
        self.stdout = os.fdopen(resp_r, "rb", buffering=0)
        self.returncode = None

    def wait(self, timeout=None):
        if self.returncode is None:
            code = self.zygote.wait(self.pid, timeout if timeout is not None else 3600)
            if code is None:
                raise subprocess.TimeoutExpired("sandbox", timeout)
            self.returncode = code
        return self.returncode


class Sandbox:
    """Runs ``cells`` (list of dicts id/source) of one submission in a child process."""

    def __init__(self, cells, *, forbid=(), preimport=(), limits: Limits | None = None, slot: int = 0,
                 trusted: bool = False, zygote: Zygote | None = None):
        self.cells = list(cells)
        self.forbid = sorted(set(forbid))
        self.preimport = list(preimport)
        self.limits = limits or Limits()
        self.slot = slot
        self.trusted = trusted                 # the instructor's own code: may fill the compile cache
        self.zygote = zygote if zygote is not None and zygote.alive else None
        self.skip: dict[str, str] = {}         # cell id -> why it was skipped
        self.cell_errors: dict[str, str] = {}  # cell id -> exception the cell raised
        self.proc = None
        self.workdir = None
        self.used = 0.0
        self.restarts = 0
        self.output_chars = 0
        self.broken = None                     # reason the sandbox cannot run at all
        self.isolated = False                  # the child runs in its own mount namespace

    # -- process management
    def _uid(self):
        return self.limits.uid

    def _spawn(self):
        self.workdir = tempfile.mkdtemp(prefix="grader-sandbox-", dir=self.limits.run_dir)
        uid = self._uid()
        kwargs = {}
        if uid is not None:
            os.chown(self.workdir, uid, uid)
            kwargs.update(user=uid, group=uid, extra_groups=[])
        os.chmod(self.workdir, 0o700)
        if self.zygote is not None and uid is None:
            try:
                self.proc = _ForkedProc(self.zygote, *self.zygote.fork())
            except OSError:
                self.zygote = None
        if self.proc is None:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", str(CHILD)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                cwd=self.workdir, env=_child_env(self.workdir, self.limits.cache_dir), start_new_session=True,
                close_fds=True, umask=0o077, **kwargs)
        cells = [c for c in self.cells if c["id"] not in self.skip]
        init = {"cells": cells, "forbid": self.forbid, "preimport": self.preimport,
                "workdir": os.path.realpath(self.workdir), "read_roots": _read_roots(self.limits.cache_dir),
                "grader_dir": str(CHILD.parent), "hide": [str(h) for h in self.limits.hide],
                "write_roots": [str(self.limits.cache_dir)] if self.trusted and self.limits.cache_dir else [],
                "limits": {"memory_bytes": self.limits.memory_mb * 2**20,
                           "cpu_seconds": int(self.limits.budget) + 10, "file_bytes": 32 * 2**20}}
        self._send(init)

    def _send(self, header, chunks=()):
        data = _child.pack(header, chunks)
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def _recv(self, timeout):
        deadline = time.monotonic() + min(timeout, max(0.5, self.limits.budget - self.used))
        return _child.read_message(self.proc.stdout.fileno(), deadline)

    def kill(self):
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except Exception:
                    pass
            self.proc = None
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    close = kill

    def _death_reason(self) -> str:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
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
        """Start the child and run the cells; skip a cell that hangs or kills it, and retry."""
        while self.proc is None:
            if self.broken:
                raise StudentCodeError("crashed", self.broken)
            if self.used >= self.limits.budget:
                self.broken = "the submission used up its total time budget"
                raise StudentCodeError("timeout", self.broken)
            self.restarts += 1
            if self.restarts > 8:
                self.broken = "the sandbox had to be restarted too often"
                raise StudentCodeError("crashed", self.broken)
            t0 = time.monotonic()
            current = None
            try:
                self._spawn()
                first = True
                while True:
                    # The first message includes starting Python and importing JAX.
                    header, _ = self._recv(self.limits.timeout + (60 if first else 0))
                    first = False
                    op = header.get("op")
                    if op == "cell_start":
                        current = header.get("id")
                    elif op == "cell_done":
                        if header.get("error"):
                            self.cell_errors[str(header.get("id"))] = str(header["error"])[:300]
                        current = None
                    elif op == "ready":
                        self.output_chars = int(header.get("output_chars", 0) or 0)
                        self.isolated = bool(header.get("isolated"))
                        break
                    else:
                        raise ValueError("unexpected message")
            except TimeoutError:
                self.kill()
                if current is None:
                    self.broken = "the sandbox did not start in time"
                    continue
                self.skip[current] = f"cell {current} did not finish within {self.limits.timeout:g} s"
            except (EOFError, ValueError, OSError, BrokenPipeError) as exc:
                reason = self._death_reason() if self.proc is not None else str(exc)
                self.kill()
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
            self.kill()
            raise StudentCodeError("timeout", f"{name} did not return within {self.limits.timeout:g} s "
                                   f"(infinite loop?)") from None
        except (EOFError, OSError, BrokenPipeError):
            reason = self._death_reason() if self.proc is not None else "the process died"
            self.kill()
            raise StudentCodeError("crashed", f"calling {name} crashed the kernel: {reason}") from None
        except ValueError as exc:
            self.kill()
            raise StudentCodeError("error", f"{name}: the sandbox sent an unreadable answer ({exc})") from None
        finally:
            self.used += time.monotonic() - t0
        forbidden = header.get("forbidden") or []
        self.last_forbidden = {str(f) for f in forbidden} if isinstance(forbidden, list) else set()
        if header.get("op") == "error":
            kind = header.get("kind") if header.get("kind") in ("error", "missing", "unsupported") else "error"
            exc_type, msg = str(header.get("type", ""))[:60], str(header.get("message", ""))[:500]
            if kind == "missing":
                msg = self._missing_hint(name, msg)
            elif exc_type == "MemoryError":
                msg = f"MemoryError: your code tried to use more than {self.limits.memory_mb} MB"
            else:
                msg = f"{exc_type}: {msg}" if kind == "error" else msg
            raise StudentCodeError(kind, msg, exc_type if kind == "error" else "")
        if header.get("op") != "result":
            self.kill()
            raise StudentCodeError("error", "the sandbox sent an unexpected answer")
        try:
            return _child.decode(header.get("value"), payload)
        except Exception as exc:
            raise StudentCodeError("unsupported", f"{name} returned something the grader cannot read: {exc}")

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
