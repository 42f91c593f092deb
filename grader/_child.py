"""The sandboxed side of the grader: runs one student's code, answers calls with plain arrays.

Started by ``grader.sandbox`` as ``python -I .../_child.py`` in an empty temporary directory, as an
unprivileged user when the grader runs as root, with a minimal environment. It never sees the
source notebook, the hidden tests, the submissions folder or the gradebook: it receives the code
of the setup cells and of the student's solution cells over a pipe, executes them, then answers
``call``/``get`` requests. Values cross the pipe in the format below (JSON header + raw array
bytes, never pickle), and the trusted process validates every array it receives.

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


def read_message(fd: int, deadline: float | None = None, limit: int = MAX_MESSAGE):
    hlen, plen = struct.unpack("<QQ", read_exact(fd, 16, deadline))
    if hlen > 16 * 2**20 or plen > limit:
        raise ValueError("message too large")
    header = json.loads(read_exact(fd, hlen, deadline))
    if not isinstance(header, dict):
        raise ValueError("malformed message")
    payload = read_exact(fd, plen, deadline) if plen else b""
    return header, payload


# ----------------------------------------------------------------------------- child process
_BLOCKED_EVENTS = {
    "os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "os.kill", "os.killpg", "pty.spawn", "socket.connect", "socket.bind", "socket.sendto",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function", "ctypes.cdata", "ctypes.addressof",
    "ctypes.string_at", "ctypes.wstring_at", "ctypes.set_errno", "sys.addaudithook", "os.setuid",
    "os.chroot", "os.putenv", "os.unsetenv", "sys._current_frames", "sys.setprofile", "sys.settrace",
    "gc.get_referrers", "gc.get_objects",
}


def _make_hook(workdir: str, read_roots: list[str], write_roots=()):
    import os.path as osp

    join, realpath, sep = osp.join, osp.realpath, os.sep
    roots = tuple(r.rstrip(sep) + sep for r in read_roots)
    work = workdir.rstrip(sep) + sep
    writable = (work,) + tuple(r.rstrip(sep) + sep for r in write_roots)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    exact_ok = {"/dev/null", "/dev/urandom", "/dev/random"}
    blocked = set(_BLOCKED_EVENTS)
    path_events = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
                   "os.link", "os.symlink", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile",
                   "os.listdir", "os.scandir", "os.chdir", "glob.glob", "os.walk", "os.removexattr",
                   "os.setxattr", "os.listxattr", "os.getxattr", "shutil.copytree", "shutil.chown"}

    def inside(path, allowed):
        p = realpath(path) + sep
        return any(p.startswith(r) for r in allowed)

    def hook(event, args):
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            if isinstance(path, int):
                return
            try:
                path = os.fsdecode(path)
            except Exception:
                raise PermissionError("sandbox: bad path")
            if not osp.isabs(path):
                path = join(os.getcwd(), path)
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & write_flags)
            if realpath(path) in exact_ok:
                return
            if writing:
                if not inside(path, writable):
                    raise PermissionError(f"sandbox: writing {path} is not allowed")
            elif not inside(path, roots + (work,)):
                raise PermissionError(f"sandbox: reading {path} is not allowed")
        elif event in blocked:
            raise PermissionError(f"sandbox: {event} is not allowed")
        elif event in path_events:
            for a in args:
                if isinstance(a, (str, bytes, os.PathLike)):
                    p = os.fsdecode(a)
                    if not osp.isabs(p):
                        p = join(os.getcwd(), p)
                    ok = writable if event not in ("os.listdir", "os.scandir", "glob.glob", "os.walk") else roots + writable
                    if not inside(p, ok):
                        raise PermissionError(f"sandbox: {event} on {p} is not allowed")
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


def _wrap_attr(owner, attr, dotted, record):
    for a in (attr, "_" + attr):
        original = getattr(owner, a, None)
        if original is None or not callable(original) or getattr(original, "_grader_wrapped", False):
            continue

        def wrapper(*args, _orig=original, _name=dotted, **kwargs):
            record.add(_name)
            return _orig(*args, **kwargs)

        wrapper.__name__ = getattr(original, "__name__", a)
        wrapper.__doc__ = getattr(original, "__doc__", None)
        wrapper._grader_wrapped = True
        try:
            setattr(owner, a, wrapper)
        except Exception:
            pass


class _PostImportLoader:
    """Runs ``after(module)`` once the real loader has executed a module."""

    def __init__(self, loader, after):
        self.loader, self.after = loader, after

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        self.after(module)


class _WrapOnImport:
    """Meta-path finder: wraps forbidden functions of a module when (if ever) it is imported."""

    def __init__(self, pending, record):
        self.pending, self.record = pending, record

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None:
            return spec
        names = self.pending[fullname]
        spec.loader = _PostImportLoader(
            spec.loader, lambda m: [_wrap_attr(m, attr, dotted, self.record) for attr, dotted in names])
        return spec


def _forbid_wrappers(names, record):
    """Wrap each forbidden ``module.function``: now if the module is loaded, else when it is imported."""
    pending: dict[str, list] = {}
    for dotted in names:
        module, _, attr = dotted.rpartition(".")
        if not module:
            continue
        if module in sys.modules:
            _wrap_attr(sys.modules[module], attr, dotted, record)
        else:
            pending.setdefault(module, []).append((attr, dotted))
    if pending:
        sys.meta_path.insert(0, _WrapOnImport(pending, record))


def _isolate_filesystem(hide, workdir: str) -> bool:
    """Best effort, as root on Linux: a private mount namespace in which every folder of ``hide`` (the
    sources, the submissions, the grader's output, the other sandboxes, /proc) is an empty tmpfs.

    Runs before any student code (ctypes is refused by the audit hook afterwards). Even code that got
    past the audit hook would then find no solutions and no gradebook or other submission to change:
    what it writes there lands in a throwaway tmpfs that only this process sees.
    """
    if os.getuid() != 0 or not hide or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
    except Exception:
        return False
    CLONE_NEWNS, MS_BIND, MS_REC, MS_PRIVATE = 0x00020000, 4096, 0x4000, 1 << 18
    if libc.unshare(CLONE_NEWNS) != 0 or libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return False
    real_work = os.path.realpath(workdir)
    keep = os.open(real_work, os.O_RDONLY | os.O_DIRECTORY)
    ok = True
    for path in sorted({os.path.realpath(h) for h in hide if os.path.isdir(h)}, key=len):
        if path in ("/", real_work):
            continue
        if libc.mount(b"tmpfs", path.encode(), b"tmpfs", 0, b"size=64k,mode=0755") != 0:
            ok = False
            continue
        if (real_work + "/").startswith(path + "/"):  # our own folder was in there: bind it back
            os.makedirs(real_work, exist_ok=True)
            if libc.mount(f"/proc/self/fd/{keep}".encode(), real_work.encode(), None, MS_BIND, None) != 0:
                ok = False
    os.chdir(real_work)
    os.close(keep)
    if libc.mount(b"tmpfs", b"/proc", b"tmpfs", 0, b"size=16k,mode=0555") != 0:
        ok = False
    return ok


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


def zygote(ctrl_fd: int) -> None:
    """Fork server: imports the heavy modules once, then forks one sandbox child per request.

    Runs only trusted code (no student code ever runs in this process). Each request on the control
    socket carries two pipe ends (requests in, answers out) for the new child; the reply is the
    child's pid, and the exit status of every child is reported when it ends.
    """
    import select
    import socket

    ctrl = socket.socket(fileno=ctrl_fd)
    import numpy  # noqa: F401
    import jax  # noqa: F401
    import jax.numpy  # noqa: F401  (the XLA backend is started in each child, after the fork)
    try:
        import course_lib  # noqa: F401
        import grader.api  # noqa: F401
    except ImportError:
        pass
    children: set[int] = set()

    def tell(obj):
        ctrl.sendall((json.dumps(obj) + "\n").encode())

    while True:
        ready, _, _ = select.select([ctrl], [], [], 0.1)
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
            tell({"op": "exit", "pid": pid, "code": os.waitstatus_to_exitcode(status)})
        if not ready:
            continue
        try:
            msg, fds, _, _ = socket.recv_fds(ctrl, 1024, 4)
        except OSError:
            os._exit(0)
        if not msg:
            os._exit(0)
        pid = os.fork()
        if pid == 0:
            try:
                ctrl.close()
                os.setsid()
                os.dup2(fds[0], 0)
                os.dup2(fds[1], 1)
                for fd in fds:
                    os.close(fd)
                main()
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        children.add(pid)
        tell({"op": "forked", "pid": pid})


def main() -> None:
    import resource

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
    workdir = init["workdir"]
    os.chdir(workdir)
    for var in ("HOME", "TMPDIR", "MPLCONFIGDIR"):
        os.environ[var] = workdir
    limits = init["limits"]
    mem = int(limits["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    cpu = int(limits["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limits["file_bytes"]),) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0)) if os.getuid() != 0 else None
    except (ValueError, OSError):
        pass

    import numpy as np  # noqa: F401
    import jax
    import jax.numpy as jnp

    jnp.zeros(2).block_until_ready()
    for mod in init.get("preimport", []):
        try:
            __import__(mod)
        except Exception:
            pass
    _import_grader_api(init.get("grader_dir"))
    isolated = _isolate_filesystem(init.get("hide", []), workdir)
    try:  # the audit hook does not see _posixsubprocess.fork_exec: take it away
        import _posixsubprocess

        def _refused(*args, **kwargs):
            raise PermissionError("sandbox: starting processes is not allowed")

        _posixsubprocess.fork_exec = _refused
        for name in ("fork", "forkpty", "execv", "execve", "system", "posix_spawn", "posix_spawnp", "kill"):
            if hasattr(os, name):
                setattr(os, name, _refused)
    except ImportError:
        pass
    record: set[str] = set()
    _forbid_wrappers(init.get("forbid", []), record)
    del jax

    sys.addaudithook(_make_hook(init["workdir"], init["read_roots"], init.get("write_roots", [])))
    ns = {"__name__": "__main__", "__builtins__": __builtins__, "get_ipython": _IPythonStub}
    for cell in init["cells"]:
        send({"op": "cell_start", "id": cell["id"]})
        error = None
        try:
            exec(compile(cell["source"], f"<cell {cell['id']}>", "exec"), ns)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt, MemoryError ... are the student's
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
        send({"op": "cell_done", "id": cell["id"], "error": error})
    send({"op": "ready", "output_chars": sink.count, "isolated": isolated})

    while True:
        try:
            req, payload = read_message(proto_in)
        except EOFError:
            os._exit(0)
        name = req.get("name")
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
            record.clear()
            try:
                value = obj(*args, **kwargs)
                if hasattr(value, "block_until_ready"):
                    value.block_until_ready()
            except BaseException as exc:
                send({"op": "error", "kind": "error", "type": type(exc).__name__,
                      "message": str(exc)[:500], "forbidden": sorted(record)})
                continue
        try:
            spec, chunks = encode(value)
        except BaseException as exc:
            send({"op": "error", "kind": "unsupported", "type": "TypeError",
                  "message": f"your function returned something the grader cannot read: {str(exc)[:200]}",
                  "forbidden": sorted(record)})
            continue
        send({"op": "result", "value": spec, "forbidden": sorted(record), "output_chars": sink.count}, chunks)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--zygote":
        zygote(int(sys.argv[2]))
    else:
        main()
