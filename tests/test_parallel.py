"""course_lib.fast.parallel: two CPU devices only on request (use_cpu_cores), never on import, and
the batch split it offers (the fast recurrent layers use it: tests/test_fast_recurrent.py)."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib.fast import parallel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _in_fresh_process(code: str, **env) -> str:
    full = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    full.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, **env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                          check=True, cwd=ROOT).stdout.strip()


EVERY_MODULE = ("import course_lib, importlib; "
                "[importlib.import_module('course_lib.' + m) for m in sorted(course_lib._SUBMODULES) "
                "if importlib.util.find_spec('course_lib.' + m)]; "
                "import course_lib.fast, course_lib.fast.recurrent, course_lib.fast.parallel; ")


def test_importing_course_lib_leaves_the_device_count_unchanged():
    """No import-time change of global JAX state: every course_lib module (and the fast wing)
    imported, JAX still has its one CPU device, as without course_lib."""
    alone = _in_fresh_process("import jax; print(jax.device_count())")
    assert _in_fresh_process(EVERY_MODULE + "import jax; print(jax.device_count())") == alone == "1"


def test_use_cpu_cores_asks_jax_for_that_many_devices():
    code = "from course_lib import fast; fast.use_cpu_cores({}); import jax; print(len(jax.devices('cpu')))"
    assert _in_fresh_process(code.format(2)) == "2"
    assert _in_fresh_process(code.format(3)) == "3"
    # the arrays a student makes still live on the first device
    assert _in_fresh_process("from course_lib import fast; fast.use_cpu_cores(2); import jax.numpy as jnp; "
                             "print(jnp.ones(2).devices())") == "{CpuDevice(id=0)}"


def test_use_cpu_cores_after_jax_started():
    """Too late to change the count: an error that says so, unless JAX already has that many."""
    assert len(jax.devices("cpu")) == 2              # tests/conftest.py asked for two
    parallel.use_cpu_cores(2)
    with pytest.raises(RuntimeError, match=r"use_cpu_cores\(1\) must be called before JAX runs anything"):
        parallel.use_cpu_cores(1)
    with pytest.raises(TypeError, match="n must be an int, got float"):
        parallel.use_cpu_cores(2.0)
    with pytest.raises(ValueError, match="n must be an int >= 1, got 0"):
        parallel.use_cpu_cores(0)


def test_shards_picks_the_most_devices_that_divide_the_batch(monkeypatch):
    monkeypatch.setattr(parallel, "_cpu_devices", lambda: [None] * 4)
    assert parallel.shards(8, work=10.0, min_work=5.0) == 4
    assert parallel.shards(6, work=10.0, min_work=5.0) == 3
    assert parallel.shards(5, work=10.0, min_work=5.0) == 1
    assert parallel.shards(2, work=10.0, min_work=5.0) == 2
    assert parallel.shards(8, work=4.0, min_work=5.0) == 1           # too little work
    monkeypatch.setattr(parallel, "_cpu_devices", lambda: [None])
    assert parallel.shards(8, work=10.0, min_work=5.0) == 1


@pytest.mark.skipif(len(jax.devices("cpu")) < 2, reason="one CPU device")
def test_over_batch_splits_axis_0_and_sums_gradients_of_the_replicated_argument():
    rng = np.random.default_rng(0)
    w, x = jnp.asarray(rng.standard_normal((3, 2))), jnp.asarray(rng.standard_normal((4, 3)))

    def f(w, x):
        return jnp.tanh(x @ w)

    split = jax.jit(lambda w, x: parallel.over_batch(f, 2, w, x))
    np.testing.assert_allclose(split(w, x), f(w, x), rtol=1e-14)
    assert "shard_map" in str(jax.make_jaxpr(split)(w, x))
    got = jax.grad(lambda w, x: jnp.sum(split(w, x) ** 2), argnums=(0, 1))(w, x)
    want = jax.grad(lambda w, x: jnp.sum(f(w, x) ** 2), argnums=(0, 1))(w, x)
    for g, v in zip(got, want):
        np.testing.assert_allclose(g, v, rtol=1e-13)
    np.testing.assert_array_equal(parallel.over_batch(f, 1, w, x), f(w, x))   # k = 1: a plain call
