"""course_lib.fast: the fast wing.

The modules of ``course_lib`` are the plain references a student reads: each concept written once,
in the chapter's notation. This package holds optimized versions of some of them, with the **same
signatures**, each tested equal to its reference (values and gradients, float64) in
``tests/test_fast_*.py``. A chapter uses a fast path only for a large experiment and says so.

Modules: ``conv`` (chapter 10), ``recurrent`` (chapter 11), ``attention`` (chapter 18's LSTM), ``training`` (``fit``/``evaluate``: one
compiled call per epoch, compile cache across calls), ``parallel`` (the two-core split).

Rules: no reference module imports ``course_lib.fast``; timing notes live in ``benchmarks/``.

Two CPU cores are an explicit opt-in: ``course_lib.fast.use_cpu_cores(2)``, called before JAX runs
anything, gives JAX two CPU devices, over which the fast recurrent layers split large batches
(``course_lib.fast.parallel``). Importing course_lib changes no global JAX setting.
"""

from course_lib.fast.parallel import use_cpu_cores  # noqa: E402,F401  (the opt-in for two cores)
