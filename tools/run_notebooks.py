"""Execute notebooks in place, the way nbval will re-run them, and store their outputs.

    python tools/run_notebooks.py notebooks/03_neurons_and_activations.ipynb [...]

Cells run top to bottom in a fresh kernel of the current environment (the .venv), with the notebook's
folder as working directory and a per-cell timeout. Stops with exit 1 at the first error, printing it.
Prints each notebook's wall time (not stored anywhere).

Stream outputs are stored settled: consecutive pieces of one stream are merged and a line redrawn with
carriage returns (``course_lib.progress.bar``) keeps only its last state, as JupyterLab shows it and as
nbval compares it (see ``settle_streams``).
"""
from __future__ import annotations

import argparse
import pathlib
import re
import sys
import tempfile
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def ipc_config(runtime_dir):
    """nbclient config: the kernel talks over IPC sockets in ``runtime_dir`` (give it a fresh
    temporary directory) instead of TCP, which makes ipykernel 7 print a warning about unencrypted
    TCP on every start. The connection file must be an absolute path: otherwise the socket paths are
    relative, and a kernel started in the notebook's directory would not find them."""
    from traitlets.config import Config

    connection_file = str(pathlib.Path(runtime_dir).resolve() / "kernel.json")
    return Config({"KernelManager": {"transport": "ipc", "connection_file": connection_file}})


_REDRAWN = re.compile(r"[^\n]*\r(?=[^\n])")       # a line's text up to its last carriage return


def settle_streams(outputs):
    """``outputs`` with every run of consecutive stream outputs of one name that contains a carriage
    return merged into one, keeping on each of its lines only what follows the line's last carriage
    return (a progress bar's redraws become its final state). The first line keeps one leading
    carriage return, so that nbval, which merges *all* pieces of a stream before it drops redrawn text,
    finds exactly what it finds in a fresh run. Everything else is left as it was."""
    runs = []
    for out in outputs:
        if (out.get("output_type") == "stream" and runs and runs[-1][0].get("output_type") == "stream"
                and runs[-1][0]["name"] == out["name"]):
            runs[-1].append(out)
        else:
            runs.append([out])
    settled = []
    for group in runs:
        text = "".join(out["text"] for out in group) if group[0].get("output_type") == "stream" else ""
        if "\r" not in text:
            settled.extend(group)
            continue
        group[0]["text"] = _REDRAWN.sub(lambda m: "\r" if m.start() == 0 else "", text)
        settled.append(group[0])
    return settled


def run(path: pathlib.Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="kernel-") as runtime:
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
            record_timing=False, store_widget_state=True, extra_arguments=["--HistoryManager.enabled=False"],
            config=ipc_config(runtime),
        )
        client.kernel_manager_class = "jupyter_client.manager.KernelManager"
        start = time.perf_counter()
        client.execute(cwd=str(path.parent))
        elapsed = time.perf_counter() - start
    # Write the outputs into the file as it is *now*: an edit of Markdown cells made while the kernel
    # ran (e.g. by another maintainer's tool) is kept; an edit of code cells makes the outputs stale.
    current = nbformat.read(path, as_version=4)
    code_now = [(c.get("id"), c.source) for c in current.cells if c.cell_type == "code"]
    code_run = [(c.get("id"), c.source) for c in nb.cells if c.cell_type == "code"]
    if code_now != code_run:
        raise RuntimeError(f"{path}: its code cells changed while it ran; run it again")
    executed = iter(c for c in nb.cells if c.cell_type == "code")
    for cell in current.cells:
        if cell.cell_type == "code":
            ran = next(executed)
            cell.outputs, cell.execution_count = settle_streams(ran.outputs), ran.execution_count
            cell.metadata.pop("execution", None)
    # Stable metadata: no timings, the same kernelspec everywhere.
    current.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                      "name": "python3"}
    # The widgets' state (stored by nbclient) is kept: JupyterLab shows the widgets before the kernel
    # runs, and the static book (tools/build_book.py) embeds it.
    if "widgets" in nb.metadata:
        current.metadata["widgets"] = nb.metadata["widgets"]
    else:
        current.metadata.pop("widgets", None)
    nbformat.write(current, path)
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=pathlib.Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        if not path.exists():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 2
        try:
            elapsed = run(path, args.timeout)
        except CellExecutionError as exc:
            print(f"FAILED {path}\n{exc}", file=sys.stderr)
            return 1
        except RuntimeError as exc:
            print(f"FAILED {exc}", file=sys.stderr)
            return 1
        print(f"{path}: executed in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
