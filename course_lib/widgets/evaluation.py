"""Threshold explorer: one slider moves a point along the ROC and PR curves, the confusion matrix beside.

Question it answers: *a classifier outputs scores; where do the errors go when I move the decision
threshold?* Raising the threshold predicts "positive" less often: false positives fall, false
negatives rise; the point walks down the ROC curve towards (0, 0) and along the PR curve towards
higher precision and lower recall. The curves themselves (and their AUC / AP) do not depend on the
threshold: they summarise every threshold at once.

All counts are precomputed for every slider position when the explorer is built (one vectorised
NumPy pass; the curves come from ``course_lib.metrics``); moving the slider only indexes and blits.

Widget protocol: see ``course_lib/widgets/activations.py`` (``WIDGETS``, ``controls``,
``main_controls``, ``live``, ``widget``).

Taught in: notebooks/09_model_evaluation.ipynb
"""
from __future__ import annotations

import numpy as np

from .base import Explorer, LiveFigure, new_figure

__all__ = ["WIDGETS", "threshold_counts", "build_threshold_explorer", "ThresholdExplorer"]

WIDGETS = ("build_threshold_explorer",)


def threshold_counts(y_true, scores, thresholds):
    """(T, 4) array of (TN, FP, FN, TP) when predicting positive for score >= each threshold."""
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=float)
    t = np.asarray(thresholds, dtype=float)
    if y.ndim != 1 or s.shape != y.shape or not set(np.unique(y).tolist()) <= {0, 1}:
        raise ValueError("y_true must be a 1-D array of 0/1 labels with one score each in scores")
    pred = s[None, :] >= t[:, None]
    tp = np.sum(pred & (y == 1), 1); fp = np.sum(pred & (y == 0), 1)
    fn = np.sum(~pred & (y == 1), 1); tn = np.sum(~pred & (y == 0), 1)
    return np.stack([tn, fp, fn, tp], 1)


def _demo_scores(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(int)
    z = rng.normal(np.where(y == 1, 1.2, -0.8), 1.0)
    return y, 1.0 / (1.0 + np.exp(-z))


class ThresholdExplorer(Explorer):
    """Precomputed counts, the ROC / PR / confusion-matrix figure and a threshold slider."""

    def __init__(self, y_true=None, scores=None, threshold=0.5, step=0.01):
        import ipywidgets as widgets

        from course_lib import metrics

        if (y_true is None) != (scores is None):
            raise ValueError("y_true and scores must be given together (or both left out for demo data)")
        if y_true is None:
            y_true, scores = _demo_scores()
        self.y_true, self.scores = np.asarray(y_true), np.asarray(scores, dtype=float)
        if self.scores.min() < 0 or self.scores.max() > 1:
            raise ValueError("scores must be probabilities in [0, 1] (the slider spans [0, 1])")
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must lie in [0, 1], got {threshold!r}")
        self.thresholds = np.round(np.arange(0.0, 1.0 + step / 2, step), 10)
        self.counts = threshold_counts(self.y_true, self.scores, self.thresholds)
        self.fpr, self.tpr, _ = metrics.roc_curve(self.y_true, self.scores)
        self.prec, self.rec, _ = metrics.precision_recall_curve(self.y_true, self.scores)
        self.auc = metrics.roc_auc(self.y_true, self.scores)
        self.ap = metrics.average_precision(self.y_true, self.scores)
        self.values: dict = {}

        self.controls = {"threshold": widgets.FloatSlider(value=threshold, min=0.0, max=1.0, step=step,
                                                          description="threshold", readout_format=".2f")}
        self.main_controls = ("threshold",)
        self.readout = widgets.HTML()
        self._build()
        self._connect()

    def _build(self):
        fig, (ax_roc, ax_pr, ax_cm) = new_figure(1, 3, figsize=(11.0, 3.6))
        ax_roc.plot(self.fpr, self.tpr, color="C0", label=f"ROC (AUC = {self.auc:.3f})")
        ax_roc.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="random ranking")
        ax_roc.set(title="ROC curve", xlabel="false positive rate FP / N", ylabel="true positive rate TP / P",
                   xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        ax_roc.legend(loc="lower right", fontsize=8)
        ax_pr.step(self.rec, self.prec, where="post", color="C1", label=f"PR (AP = {self.ap:.3f})")
        base = self.y_true.mean()
        ax_pr.axhline(base, ls="--", color="0.6", lw=1, label=f"base rate {base:.2f}")
        ax_pr.set(title="precision-recall curve", xlabel="recall TP / P", ylabel="precision TP / (TP + FP)",
                  xlim=(-0.02, 1.02), ylim=(0.0, 1.02))
        ax_pr.legend(loc="lower left", fontsize=8)
        self.roc_marker, = ax_roc.plot([0], [0], "o", color="C3", ms=9)
        self.pr_marker, = ax_pr.plot([0], [1], "o", color="C3", ms=9)
        self.image = ax_cm.imshow(np.zeros((2, 2)), cmap="Blues", vmin=0, vmax=len(self.y_true))
        ax_cm.set(title="confusion matrix (rows: truth)", xlabel="predicted class", ylabel="true class",
                  xticks=[0, 1], yticks=[0, 1])
        names = [["TN", "FP"], ["FN", "TP"]]
        self.cell_text = [[ax_cm.text(j, i, "", ha="center", va="center", fontsize=11) for j in range(2)]
                          for i in range(2)]
        self._names = names
        animated = [self.roc_marker, self.pr_marker, self.image] + [t for row in self.cell_text for t in row]
        self.live = LiveFigure(fig, animated=animated)

    def update(self, threshold):
        i = int(np.clip(np.searchsorted(self.thresholds, threshold - 1e-9), 0, len(self.thresholds) - 1))
        tn, fp, fn, tp = (int(v) for v in self.counts[i])
        P, N = tp + fn, tn + fp
        fpr, rec = fp / N, tp / P
        prec = tp / (tp + fp) if tp + fp else 1.0   # no positive prediction: the PR curve's end point
        self.values = {"threshold": float(self.thresholds[i]), "tn": tn, "fp": fp, "fn": fn, "tp": tp,
                       "fpr": fpr, "recall": rec, "precision": prec,
                       "accuracy": (tp + tn) / (P + N)}
        self.roc_marker.set_data([fpr], [rec])
        self.pr_marker.set_data([rec], [prec])
        cm = np.array([[tn, fp], [fn, tp]])
        self.image.set_data(cm)
        for r in range(2):
            for c in range(2):
                t = self.cell_text[r][c]
                t.set_text(f"{self._names[r][c]}\n{cm[r, c]}")
                t.set_color("white" if cm[r, c] > 0.6 * len(self.y_true) else "black")
        v = self.values
        self.readout.value = (f"threshold {v['threshold']:.2f}: precision {v['precision']:.3f}, "
                              f"recall {v['recall']:.3f}, FPR {v['fpr']:.3f}, accuracy {v['accuracy']:.3f}")
        self.live.blit()


def build_threshold_explorer(y_true=None, scores=None, threshold=0.5):
    """Build the explorer (demo scores if none are given); display ``explorer.widget``."""
    return ThresholdExplorer(y_true, scores, threshold)
