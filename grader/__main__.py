"""python -m grader <assignment> <submissions> [options]: grade every submission of an assignment.

Writes <out>/gradebook.csv (student, assignment, task, points, max_points, status, reason) and
<out>/feedback/<student>.md, printing one line per graded submission.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

from .grade import REPO, grade_all
from .sandbox import Limits


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m grader", description=__doc__.splitlines()[0])
    p.add_argument("assignment", help="assignment name = folder under solutions/, e.g. 03_neurons_and_activations")
    p.add_argument("submissions", type=pathlib.Path,
                   help="folder with <student>.ipynb files, or nbgrader's submitted/<student>/<assignment>/")
    p.add_argument("--source", type=pathlib.Path, default=None, help="folder of source notebooks (default: solutions/)")
    p.add_argument("--out", type=pathlib.Path, default=None, help="output folder (default: grading-output/<assignment>)")
    p.add_argument("--jobs", type=int, default=2, help="submissions graded in parallel (default 2)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per cell and per call (default 20)")
    p.add_argument("--memory-mb", type=int, default=2048, help="address-space limit per submission (default 2048)")
    p.add_argument("--budget", type=float, default=180.0, help="total seconds per submission (default 180)")
    p.add_argument("--cache", type=pathlib.Path, default=None,
                   help="JAX compile cache shared read-only by the sandboxes (default .cache/grader-jax; "
                        "'none' to disable)")
    p.add_argument("--no-fork-server", action="store_true",
                   help="start a fresh Python for every submission instead of forking a warm one")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error("--jobs must be >= 1")
    cache = None if str(args.cache).lower() == "none" else (args.cache or REPO / ".cache" / "grader-jax").resolve()
    try:
        results, _ = grade_all(args.assignment, args.submissions, source_root=args.source, out=args.out,
                               jobs=args.jobs, limits=Limits(args.timeout, args.memory_mb, args.budget, cache_dir=cache,
                                                                fork_server=not args.no_fork_server),
                               progress=not args.quiet)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
