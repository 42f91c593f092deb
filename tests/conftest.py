"""Shared test setup: CPU JAX in float64 with course_lib's CPU devices, a headless Matplotlib backend."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

# Two CPU devices, asked for before JAX runs anything (an explicit opt-in of the fast wing, which
# splits large batches over them: course_lib/fast/parallel.py), so that the tests check the split
# path too. Importing course_lib alone leaves JAX's one device (tests/test_parallel.py).
from course_lib import fast  # noqa: E402

fast.use_cpu_cores(2)

# Notebooks written on purpose to break the grader (tests/grading/fixtures) are data, not tests.
collect_ignore_glob = ["*/fixtures/*", "fixtures/*"]
