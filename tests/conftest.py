"""Shared test setup: CPU JAX in float64, a headless Matplotlib backend."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

# Notebooks written on purpose to break the grader (tests/grading/fixtures) are data, not tests.
collect_ignore_glob = ["*/fixtures/*", "fixtures/*"]
