"""course_lib._parallel: one CPU device per core (at most 2), asked for only when nobody else
chose, and the batch split it offers (the recurrent layers use it: tests/test_recurrent.py)."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import _parallel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _devices_in_fresh_process(code: str, **env) -> str:
    full = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", _parallel.ENV)}
    full.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, **env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                          check=True, cwd=ROOT).stdout.strip()


COUNT = "import course_lib.recurrent, jax; print(len(jax.devices()))"


def test_requested_devices_reads_the_environment(monkeypatch):
    monkeypatch.setattr(_parallel, "_cores", lambda: 8)
    assert _parallel.requested_devices({}) == _parallel.DEFAULT_MAX_DEVICES == 2
    monkeypatch.setattr(_parallel, "_cores", lambda: 1)
    assert _parallel.requested_devices({}) == 1
    assert _parallel.requested_devices({_parallel.ENV: "3"}) == 3
    assert _parallel.requested_devices({_parallel.ENV: " 1 "}) == 1
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(ValueError, match="COURSE_LIB_CPU_DEVICES must be a whole number >= 1"):
            _parallel.requested_devices({_parallel.ENV: bad})


def test_this_test_process_got_one_device_per_core():
    assert len(jax.devices("cpu")) == min(_parallel._cores(), _parallel.DEFAULT_MAX_DEVICES)


@pytest.mark.skipif(_parallel._cores() < 2, reason="one core: course_lib asks for one device")
def test_a_fresh_process_gets_two_devices_unless_told_otherwise():
    assert _devices_in_fresh_process(COUNT) == "2"
    assert _devices_in_fresh_process(COUNT, COURSE_LIB_CPU_DEVICES="1") == "1"
    # a device count chosen by the user wins
    assert _devices_in_fresh_process(COUNT, XLA_FLAGS="--xla_force_host_platform_device_count=3") == "3"
    assert _devices_in_fresh_process(
        "import jax; jax.config.update('jax_num_cpu_devices', 1); " + COUNT) == "1"
    # JAX already running: too late to change, and no error
    assert _devices_in_fresh_process("import jax; jax.numpy.zeros(1); " + COUNT) == "1"
    # the arrays a student makes still live on the first device
    assert _devices_in_fresh_process(
        "import course_lib.recurrent, jax.numpy as jnp; print(jnp.ones(2).devices())") == "{CpuDevice(id=0)}"


def test_configure_does_nothing_once_jax_runs():
    jnp.zeros(1).block_until_ready()
    assert _parallel.configure({_parallel.ENV: "2"}) is False


def test_shards_picks_the_most_devices_that_divide_the_batch(monkeypatch):
    monkeypatch.setattr(_parallel, "_cpu_devices", lambda: [None] * 4)
    assert _parallel.shards(8, work=10.0, min_work=5.0) == 4
    assert _parallel.shards(6, work=10.0, min_work=5.0) == 3
    assert _parallel.shards(5, work=10.0, min_work=5.0) == 1
    assert _parallel.shards(2, work=10.0, min_work=5.0) == 2
    assert _parallel.shards(8, work=4.0, min_work=5.0) == 1           # too little work
    monkeypatch.setattr(_parallel, "_cpu_devices", lambda: [None])
    assert _parallel.shards(8, work=10.0, min_work=5.0) == 1


@pytest.mark.skipif(len(jax.devices("cpu")) < 2, reason="one CPU device")
def test_over_batch_splits_axis_0_and_sums_gradients_of_the_replicated_argument():
    rng = np.random.default_rng(0)
    w, x = jnp.asarray(rng.standard_normal((3, 2))), jnp.asarray(rng.standard_normal((4, 3)))

    def f(w, x):
        return jnp.tanh(x @ w)

    split = jax.jit(lambda w, x: _parallel.over_batch(f, 2, w, x))
    np.testing.assert_allclose(split(w, x), f(w, x), rtol=1e-14)
    assert "shard_map" in str(jax.make_jaxpr(split)(w, x))
    got = jax.grad(lambda w, x: jnp.sum(split(w, x) ** 2), argnums=(0, 1))(w, x)
    want = jax.grad(lambda w, x: jnp.sum(f(w, x) ** 2), argnums=(0, 1))(w, x)
    for g, v in zip(got, want):
        np.testing.assert_allclose(g, v, rtol=1e-13)
    np.testing.assert_array_equal(_parallel.over_batch(f, 1, w, x), f(w, x))   # k = 1: a plain call
