"""python -m grader <assignment> <submissions> [options]: grade every submission of an assignment.

Writes <out>/gradebook.csv (student, assignment, task, points, max_points, status, reason) and
<out>/feedback/<student>.md, printing one line per graded submission. Every submission runs in its
own bubblewrap sandbox (see grader/sandbox.py); where bwrap cannot run, the command refuses unless
--no-sandbox is given.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

from .grade import PER_RUN_CACHE, grade_all
from .sandbox import BWRAP_ENV, Limits, SandboxUnavailable


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
                   help="folder of the JAX compile cache that the source notebook fills and the sandboxes only read "
                        "(default: a fresh one per run; 'none' to disable)")
    p.add_argument("--bwrap", default=None,
                   help=f"path of bubblewrap's bwrap program (default: ${BWRAP_ENV}, else bwrap on the PATH)")
    p.add_argument("--no-sandbox", action="store_true",
                   help="grade WITHOUT the operating-system sandbox, where bubblewrap cannot run: only for "
                        "submissions you trust (a warning goes to the console and into the output folder)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="grade on the workers of this Dask scheduler (tcp://host:8786 or tls://...; needs "
                        "pip install -e '.[cluster]'); this machine still writes the gradebook and feedback")
    p.add_argument("--retries", type=int, default=None,
                   help="with --scheduler: retries of a submission whose worker died, timed out or lost the "
                        "connection, before it is reported as not graded (default 2)")
    p.add_argument("--task-timeout", type=float, default=None,
                   help="with --scheduler: seconds one submission may take on its worker (default 2 x budget + 60)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error("--jobs must be >= 1")
    if args.scheduler is None and (args.retries is not None or args.task_timeout is not None):
        p.error("--retries and --task-timeout need --scheduler")
    if args.retries is not None and args.retries < 0:
        p.error("--retries must be >= 0")
    if args.task_timeout is not None and args.task_timeout <= 0:
        p.error("--task-timeout must be > 0")
    cluster = {k: v for k, v in (("retries", args.retries), ("task_timeout", args.task_timeout)) if v is not None}
    if args.cache is None:
        cache = PER_RUN_CACHE
    else:
        cache = None if str(args.cache).lower() == "none" else args.cache.resolve()
    limits = Limits(args.timeout, args.memory_mb, args.budget, cache_dir=cache, sandbox=not args.no_sandbox,
                    bwrap=args.bwrap)
    try:
        grade_all(args.assignment, args.submissions, source_root=args.source, out=args.out, jobs=args.jobs,
                  limits=limits, progress=not args.quiet, scheduler=args.scheduler, cluster_options=cluster)
    except (FileNotFoundError, ValueError, SandboxUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
