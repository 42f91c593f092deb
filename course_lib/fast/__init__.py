"""course_lib.fast: the fast wing.

The modules of ``course_lib`` are the plain references a student reads: each concept written once,
in the chapter's notation. This package holds optimized versions of some of them, with the **same
signatures**, each tested equal to its reference (values and gradients, float64) in
``tests/test_fast_*.py``. A chapter uses a fast path only for a large experiment and says so.

Rules: no reference module imports ``course_lib.fast``; timing notes live in ``benchmarks/``.
"""

from course_lib.fast.parallel import use_cpu_cores  # noqa: E402,F401  (the opt-in for two cores)
