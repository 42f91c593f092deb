"""The sandboxed side of the grader: runs one student's code, answers calls with plain arrays.

``grader.sandbox`` starts this file as a *zygote* (``_child.py --zygote FD CONFIG``) inside a fresh
bubblewrap sandbox (one per grading thread, reset between submissions). The zygote imports NumPy, JAX and the modules that hold
forbidden functions, then runs no code of its own but this loop: on each request from the trusted
process it forks a child, which limits itself (rlimits, seccomp), replaces the functions its task
forbids by stubs, installs an audit hook, executes the setup cells and the student's solution cells
it receives over a pipe, then answers ``call``/``get`` requests. No student code ever runs in the
zygote, so every child starts from the same pristine state. The child never sees the source
notebook, the hidden tests, the submissions folder or the gradebook. Values cross the pipe in the
format below (JSON header + raw array bytes, never pickle), and the trusted process validates every
array it receives.

Wire message: 8-byte little-endian header length, 8-byte payload length, UTF-8 JSON header,
payload. A value is encoded as a JSON tree whose array leaves point into the payload.
This module is also imported by the trusted process for ``encode``/``decode``/``read_message``.
"""
from __future__ import annotations

import json
import os
import struct
import sys
import time

MAX_MESSAGE = 64 * 2**20
_ALLOWED_KINDS = "biufc"


# ----------------------------------------------------------------------------- wire format
def encode(value, refs=None):
    """Encode ``value`` -> (spec, list of bytes). ``refs`` maps id(callable) -> name."""
    import numpy as np

    chunks: list[bytes] = []
    offset = [0]

    def enc(v, depth):
        if depth > 40:
            raise TypeError("value nested too deeply")
        if v is None:
            return {"t": "none"}
        if isinstance(v, bool):
            return {"t": "bool", "v": v}
        if isinstance(v, int):
            return {"t": "int", "v": v} if abs(v) < 2**62 else {"t": "float", "v": float(v)}
        if isinstance(v, float):
            return {"t": "float", "v": v}
        if isinstance(v, str):
            return {"t": "str", "v": v}
        if isinstance(v, (tuple, list)):
            return {"t": type(v).__name__, "items": [enc(x, depth + 1) for x in v]}
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise TypeError("dict keys must be strings")
            return {"t": "dict", "items": [[k, enc(x, depth + 1)] for k, x in v.items()]}
        if refs is not None and callable(v) and id(v) in refs:
            return {"t": "ref", "name": refs[id(v)]}
        is_jax = type(v).__module__.startswith("jax")
        scalar = isinstance(v, np.generic)
        if isinstance(v, (np.ndarray, np.generic)) or (is_jax and hasattr(v, "__array__")):
            arr = np.asarray(v)
            if arr.dtype.kind not in _ALLOWED_KINDS:
                raise TypeError(f"arrays of dtype {arr.dtype} cannot be sent")
            data = arr.tobytes(order="C")
            spec = {"t": "arr", "dtype": arr.dtype.str, "shape": list(arr.shape), "off": offset[0],
                    "n": len(data), "jax": is_jax, "scalar": scalar}
            chunks.append(data)
            offset[0] += len(data)
            return spec
        raise TypeError(f"values of type {type(v).__name__} cannot be sent")

    return enc(value, 0), chunks


def decode(spec, payload: bytes, *, make_jax=False, refs=None):
    """Decode a spec from :func:`encode`, validating everything (the spec may be hostile)."""
    import numpy as np

    count = [0]

    def dec(s, depth):
        count[0] += 1
        if depth > 40 or count[0] > 100_000:
            raise ValueError("value too deeply nested or too large")
        if not isinstance(s, dict):
            raise ValueError("malformed value")
        t = s.get("t")
        if t == "none":
            return None
        if t in ("bool", "int", "float", "str"):
            v = s.get("v")
            typ = {"bool": bool, "int": int, "float": (float, int), "str": str}[t]
            if not isinstance(v, typ) or (t == "int" and isinstance(v, bool)):
                raise ValueError("malformed scalar")
            return float(v) if t == "float" else v
        if t in ("tuple", "list"):
            items = s.get("items")
            if not isinstance(items, list):
                raise ValueError("malformed sequence")
            out = [dec(x, depth + 1) for x in items]
            return tuple(out) if t == "tuple" else out
        if t == "dict":
            items = s.get("items")
            if not isinstance(items, list):
                raise ValueError("malformed dict")
            out = {}
            for pair in items:
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                    raise ValueError("malformed dict item")
                out[pair[0]] = dec(pair[1], depth + 1)
            return out
        if t == "ref":
            name = s.get("name")
            if refs is None or not isinstance(name, str) or name not in refs:
                raise ValueError("unknown function reference")
            return refs[name]
        if t == "arr":
            dt = np.dtype(str(s.get("dtype")))
            if dt.kind not in _ALLOWED_KINDS or dt.fields is not None or dt.itemsize > 16 or dt.subdtype:
                raise ValueError(f"array dtype {dt} not allowed")
            shape, off, n = s.get("shape"), s.get("off"), s.get("n")
            if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)
                    and len(shape) <= 32 and isinstance(off, int) and isinstance(n, int)):
                raise ValueError("malformed array")
            size = 1
            for d in shape:
                size *= d
            if size * dt.itemsize != n or off < 0 or off + n > len(payload):
                raise ValueError("array size does not match its data")
            arr = np.frombuffer(payload, dtype=dt, count=size, offset=off).reshape(shape).copy()
            if s.get("scalar") and arr.ndim == 0:
                return arr[()]
            if make_jax and s.get("jax"):
                import jax.numpy as jnp
                return jnp.asarray(arr)
            return arr
        raise ValueError(f"unknown value type {t!r}")

    return dec(spec, 0)


def pack(header: dict, chunks=()) -> bytes:
    body = json.dumps(header, allow_nan=True).encode()
    payload = b"".join(chunks)
    return struct.pack("<QQ", len(body), len(payload)) + body + payload


def read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    """Read n bytes from fd before ``deadline`` (time.monotonic()); raise TimeoutError / EOFError."""
    import select

    buf = bytearray()
    while len(buf) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise TimeoutError
        chunk = os.read(fd, min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def read_message(fd: int, deadline: float | None = None, limit: int = MAX_MESSAGE, header_limit: int = 16 * 2**20):
    """One message from ``fd``: (header dict, payload bytes). Anything malformed is a ValueError."""
    hlen, plen = struct.unpack("<QQ", read_exact(fd, 16, deadline))
    if hlen > header_limit or plen > limit:
        raise ValueError("message too large")
    try:
        header = json.loads(read_exact(fd, hlen, deadline))
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:  # (nesting deeper than the parser allows)
        raise ValueError(f"malformed message: {type(exc).__name__}") from None
    if not isinstance(header, dict):
        raise ValueError("malformed message")
    payload = read_exact(fd, plen, deadline) if plen else b""
    return header, payload


# ----------------------------------------------------------------------------- second layer: audit hook
# The operating system (bubblewrap, rlimits, seccomp) is what contains a submission; this hook only
# makes the easy attempts fail early with a readable error. It uses no function the student's code
# can replace: every name it calls is bound here, from C modules, before any student code runs.
_BLOCKED_EVENTS = {
    "os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "os.kill", "os.killpg", "pty.spawn", "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function", "ctypes.cdata", "ctypes.addressof",
    "ctypes.string_at", "ctypes.wstring_at", "ctypes.set_errno", "sys.addaudithook", "os.setuid",
    "os.chroot", "os.putenv", "os.unsetenv", "sys._current_frames", "sys.setprofile", "sys.settrace",
    "gc.get_referrers", "gc.get_objects", "code.__new__",
}
_PATH_EVENTS = {
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.link",
    "os.symlink", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile", "os.listdir", "os.scandir",
    "os.chdir", "glob.glob", "os.walk", "os.removexattr", "os.setxattr", "os.listxattr", "os.getxattr",
    "shutil.copytree", "shutil.chown",
}
_LISTING_EVENTS = {"os.listdir", "os.scandir", "glob.glob", "os.walk"}


def _make_hook(workdir: str, read_roots, write_roots=(), protected_files=(), protected_modules=()):
    import posix
    import stat as _stat

    fspath, getcwd, lstat, readlink, S_ISLNK = posix.fspath, posix.getcwd, posix.lstat, posix.readlink, _stat.S_ISLNK
    _isinstance, _str, _bytes, _int, _tuple, _len, _frozenset = isinstance, str, bytes, int, tuple, len, frozenset
    _getattr, _hasattr = getattr, hasattr
    _PermissionError, _OSError = PermissionError, OSError
    encoding = sys.getfilesystemencoding()
    readable = _tuple(r.rstrip("/") + "/" for r in list(read_roots) + [workdir] + list(write_roots))
    writable = _tuple(r.rstrip("/") + "/" for r in [workdir] + list(write_roots))
    exact_ok = _frozenset({"/dev/null", "/dev/urandom", "/dev/random"})
    blocked = _frozenset(_BLOCKED_EVENTS)
    path_events, listing = _frozenset(_PATH_EVENTS), _frozenset(_LISTING_EVENTS)
    protected = _frozenset(protected_files)
    protected_mods = _frozenset(protected_modules)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def text(path):
        path = fspath(path)
        if _isinstance(path, _bytes):
            path = path.decode(encoding, "surrogateescape")
        if not _isinstance(path, _str):
            raise _PermissionError("sandbox: bad path")
        return path

    def realpath(path):
        if not path.startswith("/"):
            path = getcwd() + "/" + path
        todo = [p for p in path.split("/") if p][::-1]
        done, hops = "", 0
        while todo:
            part = todo.pop()
            if part == ".":
                continue
            if part == "..":
                done = done.rpartition("/")[0]
                continue
            candidate = done + "/" + part
            try:
                mode = lstat(candidate).st_mode
            except _OSError:
                done = candidate
                continue
            if S_ISLNK(mode):
                hops += 1
                if hops > 40:
                    raise _PermissionError("sandbox: too many symbolic links")
                target = readlink(candidate)
                if target.startswith("/"):
                    done = ""
                todo.extend([p for p in target.split("/") if p][::-1])
            else:
                done = candidate
        return done or "/"

    def is_protected(path):
        if path in protected:
            return True
        folder, _, name = path.rpartition("/")
        if folder.endswith("/__pycache__"):  # the compiled copy of a protected module
            return folder[:-12] + "/" + name.partition(".")[0] + ".py" in protected
        return False

    def inside(path, roots):
        p = path + "/"
        for r in roots:
            if p.startswith(r):
                return True
        return False

    def hook(event, args):
        if event == "open":
            path, mode, flags = (_tuple(args) + (None, None, None))[:3]
            if path is None or _isinstance(path, _int):
                return
            path = realpath(text(path))
            if path in exact_ok:
                return
            if is_protected(path):
                raise _PermissionError(f"sandbox: reading {path} is not allowed in this task")
            writing = (_isinstance(mode, _str) and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)) or (
                _isinstance(flags, _int) and flags & write_flags)
            if not inside(path, writable if writing else readable):
                raise _PermissionError(f"sandbox: {'writing' if writing else 'reading'} {path} is not allowed")
        elif event in blocked:
            raise _PermissionError(f"sandbox: {event} is not allowed")
        elif event == "import":
            if args and args[0] in protected_mods:
                raise _PermissionError(f"sandbox: importing {args[0]} again is not allowed in this task")
        elif event == "exec" or event == "compile":
            code = args[0] if args else None
            filename = _getattr(code, "co_filename", None) if event == "exec" else (args[1] if _len(args) > 1 else None)
            if _isinstance(filename, _str) and filename.startswith("/") and is_protected(realpath(filename)):
                raise _PermissionError("sandbox: running the code of a forbidden function is not allowed")
        elif event in path_events:
            for a in args:
                if _isinstance(a, (_str, _bytes)) or _hasattr(a, "__fspath__"):
                    p = realpath(text(a))
                    if not inside(p, readable if event in listing else writable):
                        raise _PermissionError(f"sandbox: {event} on {p} is not allowed")
    return hook


class _Sink:
    """sys.stdout/sys.stderr of the student's code: counts and discards."""

    def __init__(self):
        self.count = 0

    def write(self, s):
        self.count += len(s)
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return False


# ----------------------------------------------------------------------------- forbidden functions
_STUB_SOURCE = '''
def _outer():
    {cells}
    def stub(*args, **kwargs):
        {uses}
        "@@record@@".extend("@@names@@")
        raise PermissionError({message!r})
    return stub
'''


_STUB_FILE = "<forbidden>"


def _stub_code(dotted: str, record: list, freevars: int):
    """A code object that appends ``dotted`` to ``record`` and raises; it has ``freevars`` free
    variables, so it can replace the code of any function in place."""
    cells = [f"c{i}" for i in range(freevars)]
    src = _STUB_SOURCE.format(cells=(" = ".join(cells) + " = None") if cells else "pass",
                              uses=("(" + ", ".join(cells) + ",)") if cells else "pass",
                              message=f"{dotted} is forbidden in this task: write it yourself")
    ns: dict = {}
    exec(compile(src, _STUB_FILE, "exec"), ns)
    code = ns["_outer"]().__code__
    consts = {"@@record@@": record, "@@names@@": [dotted]}
    return code.replace(co_consts=tuple(consts.get(c, c) if isinstance(c, str) else c for c in code.co_consts))


def _stub_names(code) -> list | None:
    """The list of forbidden names a stub's code records (None: not a stub)."""
    if code.co_filename != _STUB_FILE:
        return None
    lists = [c for c in code.co_consts if isinstance(c, list)]
    return lists[1] if len(lists) == 2 else None


def _resolve(dotted: str):
    """(object that owns the last attribute, attribute name) of a dotted name, importing as needed."""
    from grader.api import _resolve as resolve  # the lookup of the local forbid check (imported by the zygote)

    return resolve(dotted)


def _python_functions(obj) -> list:
    """Every Python function that ``obj`` runs: itself, or what its wrappers wrap (``jax.jit``,
    ``functools.wraps``, NumPy dispatchers, ``custom_jvp``, ``partial``), or a class's own methods."""
    import types

    found, todo, seen = [], [obj], set()
    while todo:
        o = todo.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, types.FunctionType):
            found.append(o)
        elif isinstance(o, (types.MethodType, staticmethod, classmethod)):
            todo.append(o.__func__)
        elif isinstance(o, type):
            todo.extend(v for k, v in vars(o).items() if k in ("__init__", "__new__", "__call__"))
        for attr in ("__wrapped__", "fun", "func", "_fun", "_implementation"):
            try:
                inner = getattr(o, attr)
            except Exception:
                continue
            if callable(inner):
                todo.append(inner)
    return found


def _install_stubs(names, record: list) -> tuple[set, set]:
    """Make each forbidden ``module.function`` (and its private twin ``module._function``) unusable
    in this process: the code of every Python function behind it is replaced *in place* by a stub
    that records the call and raises, so no attribute, alias, closure, ``__wrapped__`` chain or
    module dict leads back to the original; a C callable (a ufunc) is replaced in every module dict
    and container that refers to it; a class can no longer be instantiated.

    Returns (files, modules) that held the originals: the audit hook refuses to read or re-import
    them, so they cannot be loaded a second time.
    """
    import gc
    import types

    files, modules = set(), set()
    for dotted in sorted(set(names)):
        owner, attr = _resolve(dotted)
        if owner is None:
            continue
        for a in (attr, "_" + attr):
            obj = getattr(owner, a, None)
            if obj is None or not callable(obj) or isinstance(obj, types.ModuleType):
                continue
            funcs = _python_functions(obj)
            for f in funcs:
                aliases = _stub_names(f.__code__)
                if aliases is not None:  # already a stub (the same function under another name)
                    aliases.append(dotted) if dotted not in aliases else None
                    continue
                files.add(os.path.realpath(f.__code__.co_filename))
                modules.add(f.__module__)
                f.__code__ = _stub_code(dotted, record, len(f.__code__.co_freevars))
                f.__dict__.pop("__wrapped__", None)
            if isinstance(obj, type):
                stub = types.FunctionType(_stub_code(dotted, record, 0), {"__builtins__": __builtins__})
                obj.__new__ = staticmethod(stub)
                obj.__init__ = stub
            elif not funcs:  # a C callable (a ufunc): take it away wherever Python code can find it
                stub = types.FunctionType(_stub_code(dotted, record, 0), {"__builtins__": __builtins__})
                stub.__name__ = getattr(obj, "__name__", a)
                for mod in list(sys.modules.values()):
                    d = getattr(mod, "__dict__", None)
                    if isinstance(d, dict):
                        for k, v in list(d.items()):
                            if v is obj:
                                d[k] = stub
                                modules.add(mod.__name__)
                for ref in gc.get_referrers(obj):
                    if isinstance(ref, dict):
                        for k, v in list(ref.items()):
                            if v is obj:
                                ref[k] = stub
                    elif isinstance(ref, list):
                        ref[:] = [stub if v is obj else v for v in ref]
                    elif isinstance(ref, types.CellType):
                        ref.cell_contents = stub
            del obj
    for name in modules:
        mod = sys.modules.get(name)
        for path in (getattr(mod, "__file__", None), getattr(mod, "__cached__", None)):
            if isinstance(path, str):
                files.add(os.path.realpath(path))
    return files, modules


# ----------------------------------------------------------------------------- kernel-side limits
SECCOMP_LIB = "libseccomp.so.2"
# Denied outright (EPERM): new processes and programs, other processes' memory and kernel objects, and
# memory the address-space limit does not count (memfd, System V and POSIX shared memory, io_uring).
_DENIED_SYSCALLS = (
    "fork", "vfork", "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_open",
    "pidfd_getfd", "pidfd_send_signal", "kcmp", "keyctl", "add_key", "request_key", "userfaultfd",
    "perf_event_open", "bpf", "memfd_create", "memfd_secret", "shmget", "shmat", "msgget", "semget", "mq_open",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "unshare", "setns", "mount", "umount2",
    "pivot_root", "chroot", "open_by_handle_at", "name_to_handle_at", "fanotify_init", "tkill", "connect",
    "bind", "listen", "accept", "accept4", "process_madvise")


def _seccomp(lib_name: str = SECCOMP_LIB) -> bool:
    """Install a seccomp filter with libseccomp: no new processes (threads only), no exec, no ptrace or
    reading other processes' memory, no kernel keyrings, no memory outside the address-space limit
    (memfd, shared memory), no new namespaces, no network sockets (AF_UNIX pairs only, no connect or
    bind), no signals to any process but this one. Irrevocable. False if libseccomp is missing."""
    import ctypes
    import errno

    try:
        lib = ctypes.CDLL(lib_name, use_errno=True)
    except OSError:
        return False

    class Cmp(ctypes.Structure):
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]

    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(Cmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    allow, ne, masked_eq, clone_thread, af_unix = 0x7FFF0000, 1, 7, 0x00010000, 1
    me = os.getpid()

    def deny(e):
        return 0x00050000 | e

    ctx = lib.seccomp_init(allow)
    if not ctx:
        return False
    ok = True

    def rule(name, action, *conds):
        nonlocal ok
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr >= 0:  # (a name this architecture does not have resolves to a negative number)
            arr = (Cmp * len(conds))(*conds) if conds else None
            ok &= lib.seccomp_rule_add_array(ctx, action, nr, len(conds), arr) == 0

    try:
        for name in _DENIED_SYSCALLS:
            rule(name, deny(errno.EPERM))
        # clone3 passes its flags in memory that a filter cannot read: make the C library fall back to clone
        rule("clone3", deny(errno.ENOSYS))
        rule("clone", deny(errno.EPERM), Cmp(0, masked_eq, clone_thread, 0))  # without CLONE_THREAD: a process
        for name in ("socket", "socketpair"):
            rule(name, deny(errno.EAFNOSUPPORT), Cmp(0, ne, af_unix, 0))
        for name in ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):  # signals: this process only
            rule(name, deny(errno.EPERM), Cmp(0, ne, me, 0))
        ok = ok and lib.seccomp_load(ctx) == 0
    finally:
        lib.seccomp_release(ctx)
    return bool(ok)


def _set_limits(limits: dict) -> None:
    import resource

    mem = int(limits["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    cpu = int(limits["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limits["file_bytes"]),) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    try:  # counts threads too (JAX starts ~20); per user namespace, so per sandbox
        resource.setrlimit(resource.RLIMIT_NPROC, (int(limits["processes"]),) * 2)
    except (ValueError, OSError):
        pass


# ----------------------------------------------------------------------------- processes
def _import_grader_api(grader_dir):
    """Make ``from grader.api import check_function`` work in setup cells (by file path if needed)."""
    try:
        import grader.api  # noqa: F401
        return
    except ImportError:
        pass
    if not grader_dir:
        return
    import importlib.util
    import types

    pkg = types.ModuleType("grader")
    pkg.__path__ = [grader_dir]
    sys.modules["grader"] = pkg
    spec = importlib.util.spec_from_file_location("grader.api", os.path.join(grader_dir, "api.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules["grader.api"] = mod
    spec.loader.exec_module(mod)
    pkg.api = mod


class _IPythonStub:
    def __getattr__(self, name):
        return lambda *a, **k: None


def zygote(ctrl_fd: int, config: dict) -> None:
    """Fork server: imports the heavy modules once, then forks one child per request.

    Runs only trusted code. Requests arrive as datagrams on the control socket: ``fork`` (with the
    two pipe ends of the new child attached) and ``kill``; it reports ``forked`` and ``exit`` (with
    the exit status) for each child. Inside the sandbox it is process 1 of its pid namespace: the
    kernel drops signals its children send it, and when it ends every process of the sandbox ends.
    """
    import select
    import signal
    import socket

    import gc

    gc.disable()  # importing is faster without collections; gc.freeze() below, children collect again
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    ctrl = socket.socket(fileno=ctrl_fd)
    import numpy  # noqa: F401
    import jax  # noqa: F401
    import jax.numpy  # noqa: F401  (the XLA backend is started in each child, after the fork)
    for name in config.get("preimport", []):
        try:
            __import__(name)
        except Exception:
            pass
    for dotted in config.get("forbid", []):  # import what holds them once here, not in every child
        try:
            _resolve(dotted)
        except Exception:
            pass
    _import_grader_api(config.get("grader_dir"))
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: a child of the same uid cannot ptrace it or read its memory
    except Exception:
        libc = None
    me = os.getpid()
    home = config.get("wipe") or ""  # the sandbox's /tmp (or the unsandboxed work folder): wiped before every child
    max_files = int(config.get("max_files", 0) or 0)
    gc.collect()
    gc.freeze()  # children inherit these objects: no garbage collection of theirs touches (and copies) them
    children: dict[int, str] = {}  # pid -> why the zygote killed it ("" if it did not)
    counter = 0

    def tell(obj):
        try:
            ctrl.send(json.dumps(obj).encode())
        except OSError:  # the grader has closed the socket (it is done with this sandbox)
            pass

    def reap(block=False):
        while children:
            try:
                pid, status, usage = os.wait4(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                children.clear()
                return
            if pid == 0:
                return
            if pid in children:
                why = children.pop(pid)
                msg = {"op": "exit", "pid": pid, "code": os.waitstatus_to_exitcode(status),
                       "cpu": round(usage.ru_utime + usage.ru_stime, 3)}
                if why:
                    msg["why"] = why
                tell(msg)

    while True:
        ready, _, _ = select.select([ctrl], [], [], 0.05)
        reap()
        if max_files and home and children:  # a flood of (empty) files would use kernel memory no limit counts
            try:
                st = os.statvfs(home)
                used = st.f_files - st.f_ffree
            except OSError:
                used = 0
            if used > max_files:
                for pid in children:
                    children[pid] = "files"
                    os.kill(pid, signal.SIGKILL)
        if not ready:
            continue
        try:
            msg, fds, _, _ = socket.recv_fds(ctrl, 65536, 4)
        except OSError:
            msg, fds = b"", []
        if not msg:  # the grader is done with this sandbox: end (and reap) the children, then leave
            for pid in children:
                os.kill(pid, signal.SIGKILL)
            reap(block=True)
            os._exit(0)
        try:
            req = json.loads(msg)
        except ValueError:
            req = {}
        if req.get("op") == "kill":
            if req.get("pid") in children:
                os.kill(req["pid"], signal.SIGKILL)
        elif req.get("op") == "reset":  # another submission next: as if this zygote had just started
            for pid in children:
                os.kill(pid, signal.SIGKILL)
            reap(block=True)
            if home:
                _wipe(home)
            counter = 0
            tell({"op": "reset", "pid": 0})
        elif req.get("op") == "fork" and len(fds) == 2:
            # Every child starts from a clean slate: the one before is gone (no process, thread, socket
            # or lock of it is left) and nothing it wrote in the temporary folder remains.
            for pid in children:
                os.kill(pid, signal.SIGKILL)
            reap(block=True)
            if home:
                _wipe(home)
            counter += 1
            pid = os.fork()
            if pid == 0:
                try:
                    if libc is not None:
                        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: end with the zygote
                    if os.getppid() != me:
                        os._exit(0)
                    ctrl.close()
                    os.setsid()
                    os.dup2(fds[0], 0)
                    os.dup2(fds[1], 1)
                    for fd in fds:
                        os.close(fd)
                    child(counter)
                finally:
                    os._exit(0)
            children[pid] = ""
            tell({"op": "forked", "pid": pid})
        for fd in fds:
            os.close(fd)


def _wipe(folder: str) -> None:
    """Delete everything inside ``folder`` (what a child left behind), whatever its permissions and
    depth: folders that are not empty are emptied by moving their entries up, so there is no recursion
    and no path grows long."""
    import stat

    n = 0
    try:
        todo = [e.name for e in os.scandir(folder)]
    except OSError:
        return
    while todo:
        name = todo.pop()
        path = os.path.join(folder, name)
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                os.unlink(path)
                continue
            try:
                os.rmdir(path)
                continue
            except OSError:
                pass
            os.chmod(path, 0o700)
            for entry in os.scandir(path):
                n += 1
                os.rename(entry.path, os.path.join(folder, f".wipe-{n}"))
                todo.append(f".wipe-{n}")
            os.rmdir(path)
        except OSError:
            pass


def child(number: int = 0) -> None:
    """One forked child: limit, stub, guard, run the cells, then answer calls until stdin closes."""
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    sink = _Sink()
    sys.stdout = sys.stderr = sink

    def send(header, chunks=()):
        data = pack(header, chunks)
        view = memoryview(data)
        while view:
            n = os.write(proto_out, view)
            view = view[n:]

    init, _ = read_message(proto_in)
    import gc

    gc.enable()
    workdir = init["workdir"]
    if init.get("fresh_workdir"):
        workdir = os.path.join(workdir, f"child-{number}")
        os.makedirs(workdir, mode=0o700, exist_ok=True)
    os.chdir(workdir)
    for var in ("HOME", "TMPDIR", "MPLCONFIGDIR"):
        os.environ[var] = workdir
    _set_limits(init["limits"])

    cpu = [time.process_time()]

    def lap():
        cpu.append(time.process_time())
        return round(cpu[-1] - cpu[-2], 4)

    import jax

    if init.get("cache_dir"):  # (read when the first compilation happens, not before)
        jax.config.update("jax_compilation_cache_dir", init["cache_dir"])
    jax.devices()  # start XLA (its threads) before the filter below
    seconds = {"xla": lap()}
    record: list = []
    files, modules = _install_stubs(init.get("forbid", []), record)
    seconds["stubs"] = lap()
    guards = init.get("guards", {})
    seccomp = _seccomp(guards.get("seccomp_lib", SECCOMP_LIB)) if guards.get("seccomp", True) else False
    if guards.get("require_seccomp") and not seccomp:
        send({"op": "fatal", "seccomp": seccomp})  # fail closed: no student code runs without the filter
        os._exit(70)
    if init.get("audit_hook", True):
        sys.addaudithook(_make_hook(workdir, init["read_roots"], init.get("write_roots", []), files, modules))
    seconds["guards"] = lap()
    del files, modules, jax
    ns = {"__name__": "__main__", "__builtins__": __builtins__, "get_ipython": _IPythonStub}
    for cell in init["cells"]:
        send({"op": "cell_start", "id": cell["id"]})
        error = None
        try:
            exec(compile(cell["source"], f"<cell {cell['id']}>", "exec"), ns)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt, MemoryError ... are the student's
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
        send({"op": "cell_done", "id": cell["id"], "error": error})
    seconds["cells"] = lap()
    send({"op": "ready", "output_chars": sink.count, "isolated": bool(init.get("isolated")), "seccomp": seccomp,
          "forbidden": sorted(set(record)), "cpu_seconds": seconds})

    while True:
        try:
            req, payload = read_message(proto_in)
        except EOFError:
            os._exit(0)
        name = req.get("name")
        record.clear()
        if name not in ns:
            send({"op": "error", "kind": "missing", "type": "NameError",
                  "message": f"name {name!r} is not defined in your notebook"})
            continue
        obj = ns[name]
        if req.get("op") == "get":
            value = obj
        else:
            if not callable(obj):
                send({"op": "error", "kind": "error", "type": "TypeError",
                      "message": f"{name} is a {type(obj).__name__}, not a function"})
                continue
            try:
                refs = {k: v for k, v in ns.items() if callable(v) and isinstance(k, str)}
                args = decode(req["args"], payload, make_jax=True, refs=refs)
                kwargs = decode(req["kwargs"], payload, make_jax=True, refs=refs)
            except Exception as exc:
                send({"op": "error", "kind": "error", "type": "GraderError", "message": f"bad request: {exc}"})
                continue
            try:
                value = obj(*args, **kwargs)
                if hasattr(value, "block_until_ready"):
                    value.block_until_ready()
            except BaseException as exc:
                send({"op": "error", "kind": "error", "type": type(exc).__name__,
                      "message": str(exc)[:500], "forbidden": sorted(set(record))})
                continue
        try:
            spec, chunks = encode(value)
        except BaseException as exc:
            send({"op": "error", "kind": "unsupported", "type": "TypeError",
                  "message": f"your function returned something the grader cannot read: {str(exc)[:200]}",
                  "forbidden": sorted(set(record))})
            continue
        send({"op": "result", "value": spec, "forbidden": sorted(set(record)), "output_chars": sink.count}, chunks)


def probe(config: dict) -> None:
    """What the guards can do where this runs (the grader checks it once before grading)."""
    out = {"uid": os.getuid(), "seccomp": _seccomp(config.get("seccomp_lib", SECCOMP_LIB))}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--zygote":
        zygote(int(sys.argv[2]), json.loads(sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--probe":
        probe(json.loads(sys.argv[2]))
    else:
        print("usage: _child.py --zygote FD CONFIG (started by grader.sandbox)", file=sys.stderr)
        sys.exit(2)
