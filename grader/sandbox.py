"""Trusted side of the sandbox: bubblewrap sandboxes, a fresh child forked in one for each phase.

Student code runs in an operating-system sandbox made by bubblewrap (``bwrap``): new user,
pid, mount, network, IPC and UTS namespaces; uid/gid 65534 (``nobody``) without capabilities; no
network; a root file system that holds only read-only binds of ``/usr``, the Python installation,
``course_lib`` and ``grader``, a minimal ``/dev`` and a private ``/tmp`` (tmpfs, size-limited). The
sandbox's first process (pid 1 of its namespace) is a zygote (``grader/_child.py``) that imports
JAX once; the kernel ends every process of the sandbox when the zygote ends, and the zygote ends
with this process (``--die-with-parent``). For each phase of the grading the zygote forks a fresh
child that sets kernel-enforced limits (address space, CPU time, file size, processes, open files),
a seccomp filter (no new processes, no exec, no ptrace) and the audit hook (a second layer), then
runs the student's cells. A cell or call that hangs or kills its child costs that cell or call and
a new child is forked; if the zygote itself goes, a new sandbox is started. A sandbox serves one
submission at a time; a grading run keeps it for the next one after a reset (:class:`ZygotePool`).

Where bubblewrap cannot run, :func:`sandbox_problem` says why; ``Limits(sandbox=False)`` (the
command's ``--no-sandbox``) then runs the same zygote without the operating-system layer.
"""
from __future__ import annotations

import builtins
import json
import os
import pathlib
import queue
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
from .safe_text import clean_text

CHILD = pathlib.Path(_child.__file__).resolve()
REPO = CHILD.parents[1]
BWRAP_ENV = "GRADER_BWRAP"              # path of the bwrap program (default: bwrap on the PATH)
SANDBOX_UID = 65534                     # nobody
SANDBOX_TMP = "/tmp"                    # inside the sandbox: a private tmpfs
SANDBOX_CACHE = "/var/cache/grader-jax"  # inside the sandbox: the compile cache (read-only for students)
XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
SECCOMP_LIB_ENV = "GRADER_LIBSECCOMP"  # name of libseccomp to load (tests point it at a missing library)
MAX_TMP_FILES = 10_000                  # files and folders a child may keep in the sandbox's /tmp


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
        self.seccomp_lib = os.environ.get(SECCOMP_LIB_ENV) or _child.SECCOMP_LIB
        self.cgroups = None                  # _PidsCgroups when the grader runs as root (set by sandbox_problem)
        self.max_files = MAX_TMP_FILES

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
        if cache_writable:  # the warm-up (trusted): compilations of visible and hidden tests, in two folders
            args += ["--bind", str(cache), SANDBOX_CACHE]
        else:  # a student: only the visible tests' compilations (the hidden ones would tell their shapes)
            os.makedirs(os.path.join(cache, "visible"), exist_ok=True)
            args += ["--ro-bind", os.path.join(cache, "visible"), f"{SANDBOX_CACHE}/visible"]
    args += ["--remount-ro", "/", "--chdir", SANDBOX_TMP, "--clearenv"]
    shown = SANDBOX_CACHE if cache_writable else f"{SANDBOX_CACHE}/visible"
    for k, v in _env(SANDBOX_TMP, shown if cache else None).items():
        args += ["--setenv", k, v]
    return args + ["--"]


_PROBED: dict = {}


def _probe(cmd: list[str], limits: Limits) -> dict | str:
    """Run the child's probe with ``cmd`` in front (bwrap, or nothing): its uid and what its guards can do."""
    config = json.dumps({"seccomp_lib": limits.seccomp_lib})
    try:
        proc = subprocess.run(cmd + [sys.executable, "-I", str(CHILD), "--probe", config], capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not be started: {exc}"
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert isinstance(out, dict) and proc.returncode == 0
        return out
    except (ValueError, IndexError, AssertionError):
        return (proc.stderr.strip() or f"exit status {proc.returncode}")[-300:]


def sandbox_problem(limits: Limits) -> str | None:
    """Why submissions cannot be graded safely here (None: they can). Runs the sandbox once to find out,
    and records in ``limits`` the pids cgroups that hold a root user's sandboxes.

    Refused: no Linux or no bwrap, bwrap cannot make a sandbox (no user namespaces), the seccomp filter
    cannot be installed (libseccomp missing), or the grader runs as root (whose sandboxes the kernel
    does not hold to the process limit) and no pids cgroup can be made to hold them instead.
    """
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux; this is {sys.platform}"
    path = limits.bwrap_path()
    if not path:
        return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return f"bubblewrap was not found at {path} (apt-get install bubblewrap)"
    key = (path, limits.tmp_mb, limits.seccomp_lib)
    if key not in _PROBED:
        try:
            cmd = bwrap_command(limits, with_cache=False)
        except SandboxUnavailable as exc:
            return str(exc)
        out = _probe(cmd, limits)
        if isinstance(out, str):
            _PROBED[key] = (f"bubblewrap ({path}) cannot create a sandbox here: {out} (it needs user namespaces: "
                            f"sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0)"), None
        elif out.get("uid") != SANDBOX_UID:
            _PROBED[key] = f"bubblewrap ({path}) ran its sandbox as uid {out.get('uid')}, not {SANDBOX_UID}", None
        elif not out.get("seccomp"):
            _PROBED[key] = (f"the seccomp filter cannot be installed in the sandbox ({limits.seccomp_lib} could not be "
                            f"loaded): apt-get install libseccomp2"), None
        else:
            cgroups = None
            if os.geteuid() == 0:
                cgroups = _PidsCgroups.find()
                if cgroups is None:
                    _PROBED[key] = ("the grader runs as root, and the kernel does not hold a root user's sandboxes to "
                                    "the process limit; no pids cgroup could be made to hold them instead (cgroup file "
                                    "system not writable): run the grader as an ordinary user"), None
                    return _PROBED[key][0]
            _PROBED[key] = None, cgroups
    problem, limits.cgroups = _PROBED[key]
    return problem


def unsandboxed_guards(limits: Limits) -> list[str]:
    """For --no-sandbox: what the guards inside each process cannot do here (warnings)."""
    out = _probe([], limits)
    if isinstance(out, str):
        return [f"the grader's guard probe failed: {out}"]
    if os.geteuid() == 0:
        limits.cgroups = _PidsCgroups.find()
    if not out.get("seccomp"):
        return [f"no seccomp filter ({limits.seccomp_lib} could not be loaded: apt-get install libseccomp2): "
                f"submissions can start processes"]
    return []


class _PidsCgroups:
    """One pids cgroup per sandbox, for a grader that runs as root: the kernel does not apply RLIMIT_NPROC
    to processes whose real user is root outside their user namespace (as a root user's sandboxes are),
    so without it a thread bomb could fill the machine's process table. Created under the pids
    controller's hierarchy (cgroup v1) or the cgroup2 root, removed when the sandbox ends."""

    def __init__(self, base: str, v2: bool):
        self.base, self.v2 = base, v2
        self.lock = threading.Lock()
        self.count = 0

    @classmethod
    def find(cls) -> "_PidsCgroups | None":
        try:
            with open("/proc/self/mountinfo") as f:
                mounts = [line.split() for line in f]
        except OSError:
            return None
        candidates = []
        for parts in mounts:
            try:
                sep = parts.index("-")
            except ValueError:
                continue
            fstype, mnt, opts = parts[sep + 1], parts[4], parts[sep + 3].split(",") + parts[5].split(",")
            if fstype == "cgroup" and "pids" in opts and parts[3] == "/":
                candidates.insert(0, cls(mnt, False))
            elif fstype == "cgroup2" and parts[3] == "/":
                candidates.append(cls(mnt, True))
        for c in candidates:
            try:
                if c.v2:
                    with open(os.path.join(c.base, "cgroup.controllers")) as f:
                        if "pids" not in f.read().split():
                            continue
                    with open(os.path.join(c.base, "cgroup.subtree_control")) as f:
                        if "pids" not in f.read().split():
                            with open(os.path.join(c.base, "cgroup.subtree_control"), "w") as g:
                                g.write("+pids")
                probe = c.create(8)
                c.remove(probe)
                return c
            except OSError:
                continue
        return None

    def create(self, pids_max: int) -> str:
        with self.lock:
            self.count += 1
            path = os.path.join(self.base, f"grader-{os.getpid()}-{self.count}")
        os.mkdir(path, 0o755)
        try:
            with open(os.path.join(path, "pids.max"), "w") as f:
                f.write(str(int(pids_max)))
        except OSError:
            os.rmdir(path)
            raise
        return path

    @staticmethod
    def remove(path: str) -> None:
        for _ in range(100):  # its last processes may take a moment to be reaped
            try:
                os.rmdir(path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)


# ----------------------------------------------------------------------------- the zygote
class _Launcher:
    """Starts every sandbox's process from one thread that lives as long as this process.

    bwrap's ``--die-with-parent`` (``PR_SET_PDEATHSIG``) fires when the *thread* that started it ends,
    not the process. A zygote outlives the submission that started it (see :class:`ZygotePool`), and on
    a Dask worker the thread that graded it; started from that thread, it would be killed with it,
    before it could reap its children (and pass on their CPU time)."""

    def __init__(self):
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="sandbox-launcher", daemon=True)
                self._thread.start()
        box: dict = {}
        done = threading.Event()
        self._requests.put((args, kwargs, box, done))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["proc"]

    def _serve(self):
        while True:
            args, kwargs, box, done = self._requests.get()
            try:
                box["proc"] = subprocess.Popen(*args, **kwargs)
            except BaseException as exc:  # handed to the caller
                box["error"] = exc
            finally:
                done.set()


_LAUNCHER = _Launcher()


class Zygote:
    """A zygote process (``_child.py --zygote``), in its own bubblewrap sandbox unless sandbox=False.

    Messages on the control socket (a datagram socket pair) are JSON objects; what the zygote says is
    checked like anything else that comes from the sandbox.
    """

    def __init__(self, limits: Limits, config: dict, *, cache_writable=False):
        self.kind = self.kind_of(config, cache_writable)  # what a pool matches it by
        self.submissions = 0  # submissions it has served (see ZygotePool)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = mine
        self.log = tempfile.NamedTemporaryFile(prefix="zygote-", suffix=".log", dir=limits.run_dir, delete=False)
        self.workdir = None
        self.cgroup = None
        fd = theirs.fileno()
        try:
            if limits.sandbox:
                config = dict(config, wipe=SANDBOX_TMP, max_files=limits.max_files)
                cmd, env, cwd = bwrap_command(limits, cache_writable=cache_writable), {"PATH": "/usr/bin:/bin"}, "/"
            else:
                self.workdir = tempfile.mkdtemp(prefix="grader-unsandboxed-", dir=limits.run_dir)
                config = dict(config, wipe=self.workdir)
                cmd, env, cwd = [], _env(self.workdir, str(limits.cache_dir) if limits.cache_dir else None), self.workdir
            cmd += [sys.executable, "-I", str(CHILD), "--zygote", str(fd), json.dumps(config)]
            if limits.cgroups is not None:  # a shell moves itself into the cgroup, then becomes bwrap
                self.cgroup = limits.cgroups.create(limits.processes)
                cmd = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.cgroup] + cmd
            self.proc = _LAUNCHER.popen(cmd, pass_fds=[fd], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=self.log, cwd=cwd, env=env, start_new_session=True, umask=0o077)
        finally:
            theirs.close()
        self.lock = threading.Lock()
        self.cond = threading.Condition()
        self.forked: list[int] = []
        self.codes: dict[int, int] = {}
        self.cpu: dict[int, float] = {}     # CPU seconds of each child that ended (as the zygote says)
        self.why: dict[int, str] = {}       # children the zygote itself killed, and why ("files")
        self.alive = True
        self.resets = 0
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
                elif op == "reset":
                    self.resets += 1
                elif op == "exit" and isinstance(msg.get("code"), int):
                    self.codes[pid] = msg["code"]
                    if isinstance(msg.get("cpu"), (int, float)):
                        self.cpu[pid] = float(msg["cpu"])
                    if msg.get("why") == "files":
                        self.why[pid] = "files"
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

    @staticmethod
    def kind_of(config: dict, cache_writable=False) -> tuple:
        return json.dumps(config, sort_keys=True), bool(cache_writable)

    @property
    def healthy(self) -> bool:
        return self.alive and self.proc.poll() is None

    def reset(self, timeout: float = 10.0) -> bool:
        """Make it as it was when it started, for another submission: the zygote ends its children,
        empties /tmp and numbers its next child 1 again; here, what it said about the children ends.
        False if it did not answer in time."""
        with self.cond:
            before = self.resets
        try:
            with self.lock:
                self.sock.send(b'{"op": "reset"}')
        except OSError:
            return False
        with self.cond:
            if not self.cond.wait_for(lambda: self.resets > before or not self.alive, timeout) or not self.alive:
                return False
            self.forked.clear()
            self.codes.clear()
            self.cpu.clear()
            self.why.clear()
        return True

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
        if self.cgroup is not None:
            _PidsCgroups.remove(self.cgroup)


class ZygotePool:
    """The idle zygotes of one grading run, each handed from one submission to the next.

    Starting a sandbox (bubblewrap, Python, importing JAX) costs about 0.5 CPU s, a quarter of what
    grading a typical submission costs. Before a zygote serves another submission it is reset: it
    kills and reaps the last child, empties /tmp and numbers its next child 1 again, as it does before
    each child of one submission (a hidden test's child after the same student's visible tests). That
    child could not have left anything else behind: it could start no process, signal or ptrace no
    other process, and write nowhere but in /tmp (seccomp filter, read-only mounts, a non-dumpable
    zygote). What the next student's code can still tell is only how many processes the zygote forked
    before (its own process id). Only untrusted zygotes are pooled (the warm-up's may write the compile
    cache); one that died, did not answer the reset, or served ``max_uses`` submissions is closed.
    """

    def __init__(self, max_uses: int = 1000):
        self.max_uses = max_uses
        self._idle: list[Zygote] = []
        self._lock = threading.Lock()
        self._closed = False

    def take(self, kind) -> "Zygote | None":
        """An idle zygote started with the same configuration, or None."""
        stale = []
        with self._lock:
            found = None
            for z in list(self._idle):
                if z.kind != kind:
                    continue
                self._idle.remove(z)
                if z.healthy:
                    found = z
                    break
                stale.append(z)
        for z in stale:
            z.close()
        return found

    def give(self, zygote: "Zygote") -> None:
        """Keep ``zygote`` for the next submission once it has ended its children and emptied /tmp, or
        close it."""
        zygote.submissions += 1
        keep = zygote.healthy and not zygote.kind[1] and zygote.submissions < self.max_uses and zygote.reset()
        if keep:
            with self._lock:
                keep = not self._closed
                if keep:
                    self._idle.append(zygote)
        if not keep:
            zygote.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for z in idle:
            z.close()


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

    def __init__(self, cells, *, forbid=(), preimport=(), limits: Limits | None = None, trusted: bool = False,
                 pool: ZygotePool | None = None):
        self.cells = list(cells)
        self.pool = None if trusted else pool  # zygotes handed on between submissions (see ZygotePool)
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
        self.sent_cells: list = []            # the cells the current child was given, in order
        self.current = None                   # id of the cell the current child is running

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
        config = {"preimport": self.preimport, "forbid": self.forbid, "grader_dir": str(CHILD.parent)}
        if self.pool is not None and not self.zygote_starts:
            self.zygote = self.pool.take(Zygote.kind_of(config))
            if self.zygote is not None:
                return self.zygote
        self.zygote_starts += 1
        if self.zygote_starts > 3:
            raise OSError("the sandbox had to be started again too often")
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
        os.set_blocking(req_w, False)  # a child that stops reading must not block this process (see _send)
        self.proc = (pid, req_w, resp_r)
        self.key = key
        self.children += 1
        self.cells_fired = set()
        sandboxed = self.limits.sandbox
        cache = None
        if self.limits.cache_dir:  # the warm-up's hidden tests compile into a folder students do not see
            phase = "hidden" if self.hidden and self.trusted else "visible"
            cache = f"{SANDBOX_CACHE if sandboxed else self.limits.cache_dir}/{phase}"
        workdir = SANDBOX_TMP if sandboxed else zygote.workdir
        self.sent_cells = [c for c in self.cells if c["id"] not in self.skip]
        write_roots = [cache] if self.trusted and cache else []
        guards = {"seccomp_lib": self.limits.seccomp_lib, "require_seccomp": sandboxed}
        init = {"cells": self.sent_cells, "forbid": stubs, "workdir": workdir, "fresh_workdir": True, "cache_dir": cache,
                "read_roots": _read_roots(cache), "write_roots": write_roots, "guards": guards,
                "grader_dir": str(CHILD.parent), "isolated": sandboxed, "audit_hook": self.limits.audit_hook,
                "limits": {"memory_bytes": self.limits.memory_mb * 2**20, "cpu_seconds": int(self.limits.budget) + 10,
                           "file_bytes": 32 * 2**20, "processes": self.limits.processes}}
        self._send(init, deadline=time.monotonic() + 60)

    def _send(self, header, chunks=(), *, deadline):
        """Write a request; TimeoutError if the child does not take it in time (it may have stopped reading)."""
        import select

        view = memoryview(_child.pack(header, chunks))
        fd = self.proc[1]
        while view:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                raise TimeoutError
            try:
                view = view[os.write(fd, view[: 1 << 16]):]
            except BlockingIOError:
                continue

    def _recv(self, timeout, spent=0.0):
        left = self.limits.budget - self.used - spent
        deadline = time.monotonic() + min(timeout, max(0.5, left))
        header, payload = _child.read_message(self.proc[2], deadline, header_limit=MAX_HEADER)
        if not isinstance(header.get("op"), str):
            raise ProtocolError("a message without an operation")
        return header, payload

    def _pending(self) -> bool:
        """Did the child write something nobody asked for (it could only be forged by the student's code)?"""
        import select

        return bool(select.select([self.proc[2]], [], [], 0)[0])

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
        for fd in (stdin, stdout):
            try:
                os.close(fd)
            except OSError:
                pass
        return code

    def close(self):
        """Done with this submission: end its child; the zygote goes back to the pool, if any."""
        self._end_child(wait=False)
        zygote, self.zygote = self.zygote, None
        if zygote is not None:
            if self.pool is not None:
                self.pool.give(zygote)
            else:
                zygote.close()

    def _death_reason(self) -> str:
        """Why the current child died, in the grader's words; in hidden mode without its exit status or
        signal (the student's code chooses them, so they could carry what a hidden test sent)."""
        pid = self.proc[0]
        code = self.zygote.wait(pid, 3) if self.zygote is not None else None
        if self.zygote is not None and self.zygote.why.get(pid) == "files":
            return f"the process was stopped: it created more than {self.limits.max_files} files in /tmp"
        if self.hidden:
            return "the process ended" if code is not None else "stopped answering"
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

    def _start_messages(self, t0):
        """Read what the child says while it runs the cells, checking it against what it must say: the
        cells' ids in the order they were sent, then ``ready``. Returns the id of the cell running when
        something went wrong (raised), through ``self.current``."""
        expected = [c["id"] for c in self.sent_cells]
        first = True
        while True:
            header, _ = self._recv(self.limits.timeout + (60 if first else 0), time.monotonic() - t0)
            op = header["op"]
            if first and op == "fatal":
                raise SandboxUnavailable("the sandbox could not install its seccomp filter")
            first = False
            if op == "cell_start":
                if self.current is not None or not expected or header.get("id") != expected[0]:
                    raise ProtocolError("cell_start out of order")
                self.current = expected.pop(0)
            elif op == "cell_done":
                error = header.get("error")
                if self.current is None or header.get("id") != self.current or not (error is None or
                                                                                   isinstance(error, str)):
                    raise ProtocolError("cell_done out of order")
                if error and not self.hidden:  # (shown in visible feedback only)
                    self.cell_errors[self.current] = clean_text(error, 300)
                self.current = None
            elif op == "ready":
                fired, chars = header.get("forbidden"), header.get("output_chars")
                if (self.current is not None or expected or not isinstance(fired, list)
                        or not all(isinstance(f, str) for f in fired)
                        or not isinstance(chars, int) or isinstance(chars, bool) or chars < 0):
                    raise ProtocolError("ready out of order")
                self.output_chars = chars
                self.isolated = header.get("isolated") is True
                self.seccomp = header.get("seccomp") is True
                self.cells_fired = set(fired) & set(self.forbid)
                return
            else:
                raise ProtocolError(f"unexpected message {op[:20]!r}")

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
            self.current = None
            try:
                try:
                    self._spawn()
                except OSError as exc:
                    self.broken = f"the sandbox failed before running your code: {exc}"
                    continue
                self._start_messages(t0)
            except SandboxUnavailable as exc:
                self._end_child()
                self.broken = str(exc)
            except TimeoutError:
                self._end_child()
                self.restarts += 1
                if self.current is None:
                    self.broken = "the sandbox did not start in time"
                    continue
                self.skip[self.current] = f"cell {self.current} did not finish within {self.limits.timeout:g} s"
            except (EOFError, ValueError, OSError) as exc:
                if isinstance(exc, ProtocolError):
                    reason = "it wrote into the grader's channel (only the grader may)"
                else:
                    reason = self._death_reason() if self.proc is not None else "the process died"
                self._end_child()
                self.restarts += 1
                if self.current is None:
                    self.broken = ("the sandbox failed before running your code" if self.hidden
                                   else f"the sandbox failed before running your code: {reason}")
                    continue
                self.skip[self.current] = f"cell {self.current} stopped the kernel: {reason}"
            finally:
                self.used += time.monotonic() - t0

    def request(self, op, name, args=(), kwargs=None, refs=None):
        self.start()
        t0 = time.monotonic()
        try:
            if self._pending():
                raise ProtocolError("unrequested data")
            spec_a, chunks_a = _child.encode(tuple(args), refs=refs)
            spec_k, chunks_k = _child.encode(dict(kwargs or {}), refs=refs)
            # kwargs offsets follow the args' bytes
            shift = sum(len(c) for c in chunks_a)
            _shift(spec_k, shift)
            self._send({"op": op, "name": name, "args": spec_a, "kwargs": spec_k}, chunks_a + chunks_k,
                       deadline=time.monotonic() + self.limits.timeout)
            header, payload = self._recv(self.limits.timeout, time.monotonic() - t0)
            header = _check_answer(header, set(self.forbid))
        except TimeoutError:
            self._end_child()
            raise StudentCodeError("timeout", f"{name} did not return within {self.limits.timeout:g} s "
                                   f"(infinite loop?)") from None
        except ProtocolError:
            self._end_child()
            raise StudentCodeError("error", f"{name}: the sandbox sent an answer it was not asked for (your code "
                                   f"wrote into the grader's channel?)") from None
        except (EOFError, OSError):
            reason = self._death_reason() if self.proc is not None else "the process died"
            self._end_child()
            raise StudentCodeError("crashed", f"calling {name} crashed the kernel: {reason}") from None
        except ValueError as exc:
            self._end_child()
            raise StudentCodeError("error", f"{name}: the sandbox sent an unreadable answer"
                                   + ("" if self.hidden else f" ({clean_text(exc, 200)})")) from None
        finally:
            self.used += time.monotonic() - t0
        _, stubs, task_forbid = self.want
        fired = set(header["forbidden"]) | self.cells_fired
        if fired - task_forbid and set(stubs) - task_forbid:
            raise NeedOwnChild(fired - task_forbid)
        self.last_forbidden = fired & task_forbid
        if header["op"] == "error":
            kind, exc_type, msg = header["kind"], clean_text(header["type"], 60), clean_text(header["message"], 500)
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
        try:
            return _child.decode(header["value"], payload)
        except Exception as exc:
            raise StudentCodeError("unsupported", f"{name} returned something the grader cannot read"
                                   + ("" if self.hidden else f": {clean_text(exc, 200)}"))

    def _missing_hint(self, name, msg):
        notes = list(self.skip.values())
        notes += [f"cell {cid} raised {err}" for cid, err in self.cell_errors.items()]
        return msg + (" - " + "; ".join(notes) if notes else "")


class ProtocolError(ValueError):
    """The child said something out of turn: its messages can be forged by the student's code."""


MAX_HEADER = 8 * 2**20  # bytes of a message's JSON header (a value's structure; arrays travel in the payload)


def _check_answer(header: dict, forbid: set) -> dict:
    """Validate an answer to a call: only the fields the grader uses, each of the type it must have."""
    op, fired = header.get("op"), header.get("forbidden", [])
    if op not in ("result", "error") or not isinstance(fired, list) or not all(isinstance(f, str) for f in fired):
        raise ProtocolError("malformed answer")
    out = {"op": op, "forbidden": [f for f in fired if f in forbid]}  # (other names recorded mean nothing)
    if op == "result":
        if not isinstance(header.get("value"), dict):
            raise ProtocolError("malformed result")
        out["value"] = header["value"]
    else:
        kind, typ, msg = header.get("kind"), header.get("type", ""), header.get("message", "")
        if kind not in ("error", "missing", "unsupported") or not isinstance(typ, str) or not isinstance(msg, str):
            raise ProtocolError("malformed error")
        out.update(kind=kind, type=typ, message=msg)
    return out


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
