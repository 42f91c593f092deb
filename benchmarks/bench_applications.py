"""Benchmark: course_lib.applications (chapter 15).

    .venv/bin/python benchmarks/bench_applications.py [--rounds 20]

Rows (float32, CPU, digits 70/15/15 split):
  * tuning 16 MLP configurations x 30 epochs: ``train_mlp_configs`` (one compiled call, vmap over the
    configurations) vs 16 calls of ``course_lib.training.fit`` (one compile per call), first call and
    repeat call (jit cache warm), wall and process CPU time;
  * the deployment path: ``save_model``, ``load_model``, ``predict`` on one image and on a batch of
    269 images (median over rounds, after a warm-up call);
  * text: ``fit_text_classifier`` (bag of words, 30 epochs) and the chapter's character model
    (``train_char_model``: GRU 64, 200 steps) plus ``sample_text`` of 300 characters.
The load average closes the table: on a busy machine compare the CPU column.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from course_lib import applications as A  # noqa: E402
from course_lib import data, layers, optim, training  # noqa: E402


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def median_ms(fn, rounds):
    fn()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args(argv)

    X, y = data.load_digits()
    s = data.train_val_test_split(X, y, seed=0)
    rng = np.random.default_rng(0)
    C = 16
    search = {"learning_rates": 10 ** rng.uniform(-3.3, -1.3, C), "l2s": 10 ** rng.uniform(-5, -2, C),
              "widths": rng.choice([16, 32, 64, 128], C)}
    rows = []

    def grid(seed):
        return A.train_mlp_configs(s["X_train"], s["y_train"], s["X_val"], s["y_val"], **search, epochs=30,
                                   batch_size=64, seed=seed)

    def sequential():
        for c in range(C):
            p = layers.init_mlp((64, int(search["widths"][c]), 10), seed=c)
            training.fit(layers.mlp_apply, p, optim.adam(float(search["learning_rates"][c])),
                         s["X_train"], s["y_train"], X_val=s["X_val"], y_val=s["y_val"], epochs=30,
                         batch_size=64, seed=0)

    for label, fn in (("tuning 16 configs: train_mlp_configs, first call", lambda: grid(0)),
                      ("tuning 16 configs: train_mlp_configs, repeat", lambda: grid(1)),
                      ("tuning 16 configs: 16 x training.fit, first", sequential),
                      ("tuning 16 configs: 16 x training.fit, repeat", sequential)):
        _, w, c = timed(fn)
        rows.append((label, w, c))

    result = grid(0)
    best = int(np.argmax(result["val_acc"][:, -1]))
    params = A.config_params(result, best)
    raw = np.rint(s["X_test"] * 16).reshape(-1, 8, 8)
    with tempfile.TemporaryDirectory() as tmp:
        kw = dict(input_shape=(8, 8), classes=[str(d) for d in range(10)], input_range=(0, 16), scale=1 / 16)
        save_ms = median_ms(lambda: A.save_model(tmp, params, **kw), args.rounds)
        load_ms = median_ms(lambda: A.load_model(tmp), args.rounds)
        model = A.load_model(tmp)
        one_ms = median_ms(lambda: A.predict(model, raw[0]), args.rounds)
        batch_ms = median_ms(lambda: A.predict(model, raw), args.rounds)

    texts, labels, _ = A.make_topic_corpus(200, seed=0)
    _, tw, tc = timed(lambda: A.fit_text_classifier(texts[:560], labels[:560], texts_val=texts[560:680],
                                                    labels_val=labels[560:680], epochs=30, seed=0))
    rows.append(("text classifier (bag of words, 30 epochs)", tw, tc))
    corpus = " ".join(texts[:560])
    (cp, cv, _), cw, cc = timed(lambda: A.train_char_model(corpus, hidden_size=64, seq_len=24, batch_size=64,
                                                           steps=200, learning_rate=2e-2, seed=0))
    rows.append(("char GRU 64, 200 steps (compile + train)", cw, cc))
    _, sw, sc = timed(lambda: A.sample_text(cp, cv, "the ", 300, temperature=1.0, seed=1))
    rows.append(("sample_text 300 chars, first call", sw, sc))
    _, sw, sc = timed(lambda: A.sample_text(cp, cv, "the ", 300, temperature=0.5, seed=2))
    rows.append(("sample_text 300 chars, repeat", sw, sc))

    print(f"{'case':52s} {'wall s':>8s} {'cpu s':>8s}")
    for label, w, c in rows:
        print(f"{label:52s} {w:8.2f} {c:8.2f}")
    print()
    print(f"{'deployment (median of ' + str(args.rounds) + ')':52s} {'ms':>8s}")
    for label, ms in (("save_model (params.npz + model_card.json)", save_ms), ("load_model (checksums)", load_ms),
                      ("predict, one 8x8 image", one_ms), ("predict, batch of 269 images", batch_ms)):
        print(f"{label:52s} {ms:8.2f}")
    print(f"\nload average (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
