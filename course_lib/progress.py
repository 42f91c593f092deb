"""Progress for slow notebook cells: a status line and a progress bar whose stored output is the same
on every run and every machine.

A cell that runs for several seconds shows nothing but ``[*]``. These two helpers tell the student
what is running, at once, without putting anything volatile into the notebook:

    with progress.status("training 4 networks x 3 seeds"):      # prints at once, "done" when it ends
        results = fit(...)

    for network in progress.bar(NETWORKS, "networks"):          # a bar that fills once per item
        ...

Both write plain text to ``sys.stdout`` (never to stderr, which fails nbval), with no times, no rates
and no widget, so the stored output is deterministic:

- ``status`` prints ``"<message> ..."`` when the block starts and appends ``" done"`` and a newline
  when it ends (``" failed"`` if it raises, and the exception propagates): one line, no ``\\r``.
- ``bar`` is a ``tqdm`` text bar with a fixed format (``"<desc> |█████     | 2/4"``): one redraw per
  item (``mininterval=0``, ``miniters=1``) and no monitor thread, so the text written depends only on
  the number of items. Redraws start with ``\\r``; JupyterLab and terminals overwrite the line, nbval
  keeps the last state of the line before comparing, and ``tools/run_notebooks.py`` stores only that
  last state.

Without a kernel (a script, a test, a pipe) the same text goes to ``sys.stdout`` as it is.
"""
from __future__ import annotations

import contextlib
import sys

from tqdm.std import tqdm as _tqdm

__all__ = ["status", "bar", "BAR_FORMAT"]

#: The bar's format: description, a 20-character bar and the count; nothing that depends on time.
BAR_FORMAT = "{desc} |{bar:20}| {n_fmt}/{total_fmt}"


def _text(value, name):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip() or "\n" in value or "\r" in value:
        raise ValueError(f"{name} must be one non-empty line of text, got {value!r}")
    return value


@contextlib.contextmanager
def status(message: str):
    """Print ``"<message> ..."`` at once and ``" done"`` when the ``with`` block ends.

    If the block raises, ``" failed"`` is printed instead and the exception propagates.
    """
    message = _text(message, "message")
    out = sys.stdout
    out.write(f"{message} ...")
    out.flush()
    try:
        yield
    except BaseException:
        out.write(" failed\n")
        out.flush()
        raise
    out.write(" done\n")
    out.flush()


class _Bar(_tqdm):
    """tqdm without its monitor thread (which redraws at moments that depend on time)."""

    monitor_interval = 0


def bar(iterable, desc: str, total: int | None = None):
    """Iterate over ``iterable`` while drawing a text progress bar ``"<desc> |███   | k/n"``.

    ``total``: the number of items, needed when ``iterable`` has no ``len()``. The returned object is a
    ``tqdm`` bar (``set_postfix_str`` adds a deterministic note after the count).
    """
    desc = _text(desc, "desc")
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            raise ValueError("total must be given when iterable has no len() (a generator?)") from None
    if isinstance(total, bool) or not isinstance(total, int):
        raise TypeError(f"total must be an int, got {type(total).__name__}")
    if total < 1:
        raise ValueError(f"total must be at least 1, got {total}")
    # Every option that tqdm would otherwise take from the terminal's width or from TQDM_* environment
    # variables is given explicitly, so the text is the same everywhere.
    return _Bar(iterable, desc=desc, total=total, file=sys.stdout, bar_format=BAR_FORMAT, mininterval=0,
                miniters=1, ncols=10_000, nrows=10_000, dynamic_ncols=False, ascii=None, disable=False,
                delay=0, unit_scale=False, initial=0, position=None, leave=True)
