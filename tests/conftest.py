"""Shared test setup: CPU JAX in float64 with course_lib's CPU devices, a headless Matplotlib backend."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

# As in a notebook, course_lib is imported before JAX runs anything: one CPU device per core (at
# most 2), which course_lib uses to split large batches (course_lib/_parallel.py).
import course_lib._parallel  # noqa: E402,F401

# Notebooks written on purpose to break the grader (tests/grading/fixtures) are data, not tests.
collect_ignore_glob = ["*/fixtures/*", "fixtures/*"]
