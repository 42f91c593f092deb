"""Classic ML, metrics and the chapter 02/08/09 widgets: fit time vs scikit-learn, widget latency.

    python benchmarks/bench_classic.py

Each fit is timed warm (after one call that compiles it): median of 5 runs. Widget latency: median
time of a control change (update + blit + PNG encode) over 20 changes, after building the widget.
"""
from __future__ import annotations

import os
import statistics
import time
import warnings

import numpy as np


def _median_time(fn, n=5):
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def main() -> int:
    import jax
    from sklearn import cluster, datasets, linear_model, mixture, naive_bayes, neighbors, svm, tree
    from sklearn import metrics as skm

    from course_lib import classic, metrics

    X, y = datasets.load_breast_cancer(return_X_y=True)
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    Xb, _ = datasets.make_blobs(n_samples=600, centers=4, random_state=0)
    Xb = Xb.astype(np.float32)
    init = Xb[:4]
    block = jax.block_until_ready
    rows = [
        ("logistic regression (569x30)", lambda: block(classic.logistic_regression(X, y)),
         lambda: linear_model.LogisticRegression(solver="newton-cholesky").fit(X, y)),
        ("ridge (569x30)", lambda: block(classic.ridge_regression(X, y.astype(np.float32), 1.0)),
         lambda: linear_model.Ridge(1.0).fit(X, y)),
        ("lasso, 1000 sweeps (569x30)", lambda: block(classic.lasso_regression(X, y.astype(np.float32), 0.01)),
         lambda: linear_model.Lasso(alpha=0.01).fit(X, y)),
        ("kNN predict k=5 (569 x 569)", lambda: block(classic.knn_predict(X, y, X, k=5)),
         lambda: neighbors.KNeighborsClassifier(5).fit(X, y).predict(X)),
        ("Gaussian NB fit+predict", lambda: block(classic.gaussian_nb_predict(classic.gaussian_nb_fit(X, y), X)),
         lambda: naive_bayes.GaussianNB().fit(X, y).predict(X)),
        ("decision tree depth 5 (NumPy)", lambda: classic.decision_tree_fit(X, y, max_depth=5),
         lambda: tree.DecisionTreeClassifier(max_depth=5).fit(X, y)),
        ("linear SVM C=1 (SMO)", lambda: block(classic.linear_svm(X, y, C=1.0)),
         lambda: svm.SVC(kernel="linear", C=1.0).fit(X, y)),
        ("k-means 100 Lloyd steps (600x2)", lambda: block(classic.kmeans(Xb, 4, init=init)),
         lambda: cluster.KMeans(4, init=init, n_init=1).fit(Xb)),
        ("GMM EM 50 steps (600x2)", lambda: block(classic.gmm_em(Xb, 4, n_iter=50)["log_likelihood"]),
         lambda: mixture.GaussianMixture(4, max_iter=50, tol=0).fit(Xb)),
        ("ROC curve + AUC (569)", lambda: metrics.roc_auc(y, X[:, 0]),
         lambda: skm.roc_auc_score(y, X[:, 0])),
        ("P/R/F1 macro (569)", lambda: metrics.precision_recall_f1(y, 1 - y, average="macro"),
         lambda: skm.precision_recall_fscore_support(y, 1 - y, average="macro", zero_division=0)),
    ]
    print(f"{'task':34s} {'ours ms':>9s} {'sklearn ms':>11s}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, ours, ref in rows:
            print(f"{name:34s} {_median_time(ours):9.2f} {_median_time(ref):11.2f}")

    from course_lib.widgets import classic as wc, evaluation as we, regularization as wr
    print(f"\n{'widget (control)':44s} {'build s':>8s} {'update ms':>10s}")
    for label, build, control, values in (
        ("threshold explorer (threshold)", we.build_threshold_explorer, "threshold", np.linspace(0.05, 0.95, 20)),
        ("capacity explorer (degree)", wr.build_capacity_explorer, "degree", [1 + i % 15 for i in range(20)]),
        ("clustering stepper (step)", wc.build_clustering_stepper, "step", [i % 21 for i in range(20)]),
    ):
        t = time.perf_counter()
        w = build()
        built = time.perf_counter() - t
        ts = []
        for v in values:
            t = time.perf_counter()
            w.controls[control].value = type(w.controls[control].value)(v)
            ts.append(time.perf_counter() - t)
        print(f"{label:44s} {built:8.2f} {statistics.median(ts) * 1e3:10.1f}")
    print(f"\n1-minute load average: {os.getloadavg()[0]:.2f} (2 cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
