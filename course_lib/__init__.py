"""course_lib: the from-scratch JAX library that the course's notebooks import.

One module per concept (see CONTRIBUTING.md). Submodules are imported lazily, so
``import course_lib`` stays cheap and ``course_lib.activations`` works without an explicit import.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "activations", "losses", "data", "checks", "widgets", "layers", "backprop", "perceptron",
    "optim", "schedules", "training", "conv", "recurrent", "classic", "metrics", "regularization",
    "generative", "gan", "rl", "serialization", "applications",
    "autodiff", "normalization", "attention", "fast", "progress",
}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'course_lib' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
