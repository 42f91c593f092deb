"""Save and load parameters (pytrees of arrays) in a documented, pickle-free format.

Format ("course-params", version 1): a NumPy ``.npz`` archive (a zip of ``.npy`` files) holding
  - one array per leaf, named by its path in the tree (``"layers/0/W"``, ``"lstm/b"``);
  - ``__manifest__``: a UTF-8 JSON document stored as a uint8 array::

        {"format": "course-params", "version": 1,
         "tree": <the structure with every leaf replaced by its path>,
         "leaves": {"layers/0/W": {"shape": [64, 128], "dtype": "float32", "sha256": "..."}, ...},
         "metadata": {...user JSON...}}

The tree may nest ``dict`` (string keys without "/"), ``list`` and ``tuple``; leaves are numeric
arrays. Loading never unpickles (``allow_pickle=False``), re-checks every leaf's shape, dtype and
SHA-256, and, given ``like=``, checks that the stored tree matches the model it is loaded into.
Any mismatch raises ``ValueError`` saying what differs; a file that is not such an archive raises
``ValueError`` saying it is corrupted or of another format.

Taught in: notebooks/15_applications.ipynb (deployment).
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import zipfile

import jax.numpy as jnp
import numpy as np

__all__ = ["save_params", "load_params", "FORMAT", "VERSION"]

FORMAT = "course-params"
VERSION = 1
_MANIFEST = "__manifest__"


def _flatten(tree, prefix, leaves):
    """Return the tree with leaves replaced by their paths; fill ``leaves`` path -> ndarray."""
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            if not isinstance(key, str) or "/" in key or key == "" or key == _MANIFEST:
                raise TypeError(f"params: dict keys must be non-empty strings without '/', got {key!r}"
                                f" at {prefix or '<root>'}")
            out[key] = _flatten(value, f"{prefix}/{key}" if prefix else key, leaves)
        return {"dict": out}
    if isinstance(tree, (list, tuple)):
        kind = "list" if isinstance(tree, list) else "tuple"
        return {kind: [_flatten(v, f"{prefix}/{i}" if prefix else str(i), leaves) for i, v in enumerate(tree)]}
    if hasattr(tree, "shape") and hasattr(tree, "dtype") or isinstance(tree, (int, float, np.number)):
        arr = np.asarray(tree)
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise TypeError(f"params: leaf {prefix!r} must be a numeric array, got dtype {arr.dtype}")
        leaves[prefix or "<root>"] = arr
        return {"leaf": prefix or "<root>"}
    raise TypeError(f"params: unsupported node of type {type(tree).__name__} at {prefix or '<root>'}; "
                    f"use dicts, lists, tuples and arrays")


def _unflatten(spec, arrays):
    (kind, value), = spec.items()
    if kind == "dict":
        return {k: _unflatten(v, arrays) for k, v in value.items()}
    if kind in ("list", "tuple"):
        items = [_unflatten(v, arrays) for v in value]
        return items if kind == "list" else tuple(items)
    if kind == "leaf":
        return arrays[value]
    raise ValueError(f"corrupted parameter file: unknown node kind {kind!r} in the manifest")


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def save_params(path, params, metadata: dict | None = None) -> pathlib.Path:
    """Write ``params`` (a pytree of arrays) to ``path`` (``.npz`` is appended if missing).

    ``metadata`` is any JSON-serialisable dict (model hyper-parameters, class names, ...). The file
    is written to a temporary name and renamed, so a crash never leaves a half-written file.
    Returns the path written.
    """
    path = pathlib.Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict or None, got {type(metadata).__name__}")
    leaves: dict[str, np.ndarray] = {}
    tree = _flatten(params, "", leaves)
    manifest = {
        "format": FORMAT, "version": VERSION, "tree": tree,
        "leaves": {k: {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": _digest(a)}
                   for k, a in leaves.items()},
        "metadata": metadata or {},
    }
    try:
        blob = json.dumps(manifest, sort_keys=True).encode("utf-8")
    except TypeError as exc:
        raise TypeError(f"metadata must be JSON-serialisable: {exc}") from None
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **{_MANIFEST: np.frombuffer(blob, dtype=np.uint8)}, **leaves)
    os.replace(tmp, path)
    return path


def _describe(tree, prefix=""):
    """Path -> (shape, dtype) for every leaf of a live pytree (for ``like=`` comparison)."""
    leaves: dict[str, np.ndarray] = {}
    spec = _flatten(tree, prefix, leaves)
    return spec, {k: (tuple(a.shape), str(a.dtype)) for k, a in leaves.items()}


def load_params(path, like=None, *, return_metadata: bool = False):
    """Read parameters written by :func:`save_params`; arrays come back as ``jax.numpy`` arrays.

    ``like``: a pytree with the structure, shapes and dtypes the caller expects (e.g. freshly
    initialised parameters). A stored file that differs raises ``ValueError`` naming the first
    difference. With ``return_metadata=True`` returns ``(params, metadata)``.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: no parameter file at {path}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"corrupted parameter file {path}: not an .npz archive ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is a single .npy array, not a {FORMAT} file")
    try:
        with archive:
            if _MANIFEST not in archive.files:
                raise ValueError(f"{path} is not a {FORMAT} file (no manifest); was it written by save_params?")
            manifest = json.loads(archive[_MANIFEST].tobytes().decode("utf-8"))
            if manifest.get("format") != FORMAT:
                raise ValueError(f"{path} has format {manifest.get('format')!r}, expected {FORMAT!r}")
            if manifest.get("version") != VERSION:
                raise ValueError(f"{path} has format version {manifest.get('version')!r}; "
                                 f"this course_lib reads version {VERSION}")
            arrays = {}
            for name, info in manifest["leaves"].items():
                if name not in archive.files:
                    raise ValueError(f"corrupted parameter file {path}: leaf {name!r} is missing")
                arr = archive[name]
                if list(arr.shape) != info["shape"] or str(arr.dtype) != info["dtype"]:
                    raise ValueError(f"corrupted parameter file {path}: leaf {name!r} has shape "
                                     f"{arr.shape}/{arr.dtype}, manifest says {info['shape']}/{info['dtype']}")
                if _digest(arr) != info["sha256"]:
                    raise ValueError(f"corrupted parameter file {path}: checksum mismatch for leaf {name!r}")
                arrays[name] = arr
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupted parameter file {path}: {type(exc).__name__}: {exc}") from None
    if like is not None:
        want_spec, want = _describe(like)
        got = {k: (tuple(v["shape"]), v["dtype"]) for k, v in manifest["leaves"].items()}
        if want_spec != manifest["tree"] or want != got:
            missing = sorted(set(want) - set(got))
            extra = sorted(set(got) - set(want))
            differ = sorted(k for k in set(want) & set(got) if want[k] != got[k])
            parts = []
            if missing:
                parts.append(f"missing {missing[:5]}")
            if extra:
                parts.append(f"unexpected {extra[:5]}")
            if differ:
                k = differ[0]
                parts.append(f"{k} is {got[k][0]}/{got[k][1]} in the file but {want[k][0]}/{want[k][1]} in the model")
            if not parts:
                parts.append("the nesting (dict/list/tuple) differs")
            raise ValueError(f"mismatched parameter file {path}: " + "; ".join(parts))
    params = _unflatten(manifest["tree"], {k: jnp.asarray(v) for k, v in arrays.items()})
    return (params, manifest["metadata"]) if return_metadata else params
