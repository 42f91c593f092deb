"""Chapter 12 (autoencoders, VAEs): training, PCA and the latent explorer, compile vs run.

    python benchmarks/bench_generative.py

For each model: ``first s`` is the first call (trace + compile + run, in-process compile cache
empty for that function), ``run s`` the median of 3 further calls (run only), ``ms/step`` the run
time per minibatch step and ``cpu run s`` the process CPU time of one warm call. The digits' training
split of notebook 12 (1259 x 64), 60 epochs of batch 64 (19 steps per epoch), as in the notebook.

``in-graph PRNG`` is the reference design the library replaced: the same training, but with the
permutation and the noise drawn by ``jax.random`` inside the compiled function (nested scans over
epochs and batches). It shows what drawing them on the host saves in compile time.

PCA against scikit-learn's ``PCA(8).fit`` (warm medians). Latent explorer: build time with given
params (decode the 61 x 61 grid, first draw), and median update latency over 40 slider moves.
"""
from __future__ import annotations

import os
import statistics
import time
from functools import partial


def _timed(fn):
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def _in_graph_prng_fit():
    """The reference: permutation and noise from jax.random inside one jitted nested scan."""
    import jax
    import jax.numpy as jnp

    from course_lib import generative as g
    from course_lib import optim

    @partial(jax.jit, static_argnums=(0, 4, 6))
    def fit(kind, params, opt_state, X, batch_size, keys, opt, beta, noise):
        def loss_fn(p, xb, k):
            if kind == "vae":
                eps = jax.random.normal(k, (xb.shape[0], p["decoder"][0]["W"].shape[0]), xb.dtype)
                loss, parts = g.vae_loss(p, xb, eps, "relu", beta)
                return loss, jnp.stack([parts["recon"], parts["kl"]])
            inp = jnp.clip(xb + noise * jax.random.normal(k, xb.shape, xb.dtype), 0.0, 1.0)
            loss = jnp.mean(g._recon_per_sample(g.decode_logits(p, g.encode(p, inp)), xb))
            return loss, jnp.stack([loss, loss])

        def batch_step(carry, inputs):
            p, s = carry
            idx, k = inputs
            (_, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, X[idx], k)
            u, s = opt.update(grads, s, p)
            return (optim.apply_updates(p, u), s), parts

        def epoch(carry, key):
            k1, k2 = jax.random.split(key)
            nb = X.shape[0] // batch_size
            batches = jax.random.permutation(k1, X.shape[0])[: nb * batch_size].reshape(nb, batch_size)
            carry, parts = jax.lax.scan(batch_step, carry, (batches, jax.random.split(k2, nb)))
            return carry, parts.mean(0)

        (params, _), hist = jax.lax.scan(epoch, (params, opt_state), keys)
        return params, hist

    return fit


def main() -> int:
    import jax
    import numpy as np
    from sklearn.decomposition import PCA

    from course_lib import data
    from course_lib import generative as g
    from course_lib.widgets import generative as wg

    X, y = data.load_digits()
    split = data.train_val_test_split(X, y, seed=0)
    X, y = split["X_train"], split["y_train"]
    epochs, bs = 60, 64
    steps = epochs * (len(X) // bs)
    block = jax.block_until_ready
    print(f"{'model (60 epochs, batch 64)':36s} {'first s':>8s} {'run s':>7s} {'ms/step':>8s} {'cpu run s':>10s}")
    print("-" * 74)
    models = {"ae 64-128-8": ("ae", g.init_autoencoder((64, 128, 8))),
              "dae 64-128-8 (shares ae's compile)": ("dae", g.init_autoencoder((64, 128, 8))),
              "vae 64-128-2": ("vae", g.init_vae((64, 128, 2)))}
    for name, (kind, p0) in models.items():
        run = lambda: block(g.fit_autoencoder(p0, X, kind=kind, epochs=epochs, batch_size=bs,
                                              learning_rate=3e-3)[0])
        first, _ = _timed(run)
        runs = [_timed(run) for _ in range(3)]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(f"{name:36s} {first:8.2f} {wall:7.2f} {1e3 * wall / steps:8.3f} {cpu:10.2f}")

    ref = _in_graph_prng_fit()
    opt = g._adam_cache(3e-3, 0.9)
    keys = jax.random.split(jax.random.PRNGKey(0), epochs)
    Xj = jax.numpy.asarray(X)
    for name, (kind, p0) in (("ae, in-graph PRNG (reference)", models["ae 64-128-8"]),
                             ("vae, in-graph PRNG (reference)", models["vae 64-128-2"])):
        kk = "vae" if kind == "vae" else "ae"
        run = lambda: block(ref(kk, p0, opt.init(p0), Xj, bs, keys, opt, 1.0, 0.0)[0])
        first, _ = _timed(run)
        runs = [_timed(run) for _ in range(3)]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(f"{name:36s} {first:8.2f} {wall:7.2f} {1e3 * wall / steps:8.3f} {cpu:10.2f}")

    lin_first, _ = _timed(lambda: block(g.fit_linear_autoencoder(X, 8, steps=2000, learning_rate=3e-2)[0]))
    lin_run, lin_cpu = _timed(lambda: block(g.fit_linear_autoencoder(X, 8, steps=2000, learning_rate=3e-2)[0]))
    print(f"{'linear AE k=8, 2000 full-batch steps':36s} {lin_first:8.2f} {lin_run:7.2f} "
          f"{1e3 * lin_run / 2000:8.3f} {lin_cpu:10.2f}")

    print()
    print(f"{'operation':36s} {'ours ms':>8s} {'sklearn ms':>11s}")
    print("-" * 57)
    block(g.pca(X, 8)["components"])
    ours = statistics.median(_timed(lambda: block(g.pca(X, 8)["components"]))[0] for _ in range(5))
    sk = statistics.median(_timed(lambda: PCA(8).fit(X))[0] for _ in range(5))
    print(f"{'PCA k=8 (1259 x 64)':36s} {1e3 * ours:8.2f} {1e3 * sk:11.2f}")

    params = g.fit_autoencoder(g.init_vae((64, 128, 2)), X, kind="vae", epochs=epochs, batch_size=bs,
                               learning_rate=3e-3)[0]
    build, _ = _timed(lambda: wg.build_latent_explorer(params, X, y))
    ex = wg.build_latent_explorer(params, X, y)
    grid = ex.grid
    rng = np.random.default_rng(0)
    lat = []
    for i in range(40):
        v = float(grid[rng.integers(len(grid))])
        if v == ex.controls["z1"].value:
            continue
        t = time.perf_counter()
        ex.controls["z1"].value = v
        lat.append(time.perf_counter() - t)
    print(f"{'latent explorer build (61x61 decode)':36s} {1e3 * build:8.1f}")
    print(f"{'latent explorer update (median)':36s} {1e3 * statistics.median(lat):8.2f}")
    print(f"\n1-minute load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (times scale with it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
