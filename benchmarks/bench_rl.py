"""Reinforcement learning (chapter 14): compile and run times of course_lib.rl, against plain loops.

    python benchmarks/bench_rl.py

For each compiled function: the first call (trace + compile + run; ``cold`` = nothing in the
persistent cache only if JAX_COMPILATION_CACHE_DIR points at an empty directory) and the median of 5
warm calls, in wall and process-CPU milliseconds. The references are straightforward NumPy/Python
loops doing the same work (same random tables): what a learner would write first. Widget latency:
median over 20 changes of each control (the full protocol is in bench_widgets.py).
"""
from __future__ import annotations

import os
import statistics
import time

import numpy as np


def _timed(fn):
    t, c = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - t) * 1e3, (time.process_time() - c) * 1e3


def _first_and_warm(fn, n=5):
    first = _timed(fn)
    warm = [_timed(fn) for _ in range(n)]
    return first, (statistics.median(w[0] for w in warm), statistics.median(w[1] for w in warm))


def _loop_bandit(means, epsilon, noise, u, rand_arm):
    q, n = np.zeros(len(means)), np.zeros(len(means), int)
    for t in range(len(noise)):
        a = rand_arm[t] if u[t] < epsilon else int(np.argmax(q))
        n[a] += 1
        q[a] += (means[a] + noise[t, a] - q[a]) / n[a]


def main() -> int:
    import jax

    from course_lib import rl
    from course_lib.widgets import rl as wrl

    means = wrl.BANDIT_MEANS
    world = rl.make_gridworld(wrl.LAYOUT, slip=wrl.SLIP)
    params = rl.init_policy_network(len(world.cells), 16)
    block = jax.block_until_ready
    eps = list(wrl.EPSILONS) + [0.0]
    strategies = ["epsilon_greedy"] * len(wrl.EPSILONS) + ["ucb"]
    runs, steps = 100, 1000
    noise, u, arm = rl.bandit_tables(0, steps, len(means), runs=runs)

    rows = [
        (f"bandit_experiment {len(eps)} configs x {runs} runs x {steps} steps",
         lambda: rl.bandit_experiment(means, strategies, epsilon=eps, runs=runs, steps=steps),
         lambda: [_loop_bandit(means, 0.1, noise[k], u[k], arm[k]) for k in range(runs)],
         f"loop: 1 config x {runs} runs"),
        ("run_bandit 1 run x 1000 steps", lambda: block(rl.run_bandit(means, "ucb", steps=1000)["regret"]),
         lambda: _loop_bandit(means, 0.1, noise[0], u[0], arm[0]), "loop: 1 run"),
        ("reinforce_bandit_samples 100k", lambda: block(rl.reinforce_bandit_samples(np.zeros(4, np.float32),
                                                                                    np.arange(4.0), n_samples=100_000)),
         None, ""),
        ("value_iteration 4x3 world (NumPy)", lambda: rl.value_iteration(world, 0.9), None, ""),
        ("reinforce_gridworld tabular 500 episodes", lambda: rl.reinforce_gridworld(world, 0.9, episodes=500),
         None, ""),
        ("reinforce_gridworld network 150 episodes",
         lambda: rl.reinforce_gridworld(world, 0.9, episodes=150, learning_rate=0.1, params=params,
                                        logits_fn=rl.policy_network_logits), None, ""),
        ("policy_table network", lambda: rl.policy_table(world, params, rl.policy_network_logits), None, ""),
    ]
    print(f"{'task':52s} {'first ms':>9s} {'first cpu':>10s} {'warm ms':>8s} {'warm cpu':>9s} {'loop ms':>8s}"
          "  reference")
    for name, ours, ref, ref_name in rows:
        (f_ms, f_cpu), (w_ms, w_cpu) = _first_and_warm(ours)
        loop = f"{statistics.median(_timed(ref)[0] for _ in range(3)):8.1f}" if ref else f"{'-':>8s}"
        print(f"{name:52s} {f_ms:9.1f} {f_cpu:10.1f} {w_ms:8.1f} {w_cpu:9.1f} {loop}  {ref_name}")

    t = time.perf_counter()
    explorer = wrl.build_rl_explorer()
    built = time.perf_counter() - t
    print(f"\n{'widget (control)':36s} {'build s':>8s} {'median ms':>10s} {'cpu median ms':>14s}")
    for control, values in (("epsilon", [float(wrl.EPSILONS[(7 * i) % 26]) for i in range(1, 21)]),
                            ("shaping", [("potential", "naive", "none")[i % 3] for i in range(20)]),
                            ("strength", [float(wrl.STRENGTHS[(7 * i) % 21]) for i in range(1, 21)])):
        if control == "strength":
            explorer.controls["shaping"].value = "naive"
        times = []
        for v in values:
            if explorer.controls[control].value == v:
                continue
            times.append(_timed(lambda: setattr(explorer.controls[control], "value", v)))
        print(f"{'rl explorer (' + control + ')':36s} {built:8.2f} {statistics.median(x[0] for x in times):10.1f} "
              f"{statistics.median(x[1] for x in times):14.1f}")
    print(f"\nload average (1 min): {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
