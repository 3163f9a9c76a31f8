"""Classification metrics counted from confusion matrices: accuracy, macro-F1, per-class
precision / recall / F1 / support.

The same numbers as scikit-learn's ``accuracy_score``, ``f1_score(average="macro")`` and
``precision_recall_fscore_support`` with ``labels=range(C)`` and ``zero_division=0``
(tests/test_metrics.py checks them bit for bit), counted with numpy: a trial's evaluation no
longer imports scikit-learn (about 1 s in every fresh trial process), and the retrain's
bootstrap counts a whole chunk of resamples at once (kdtune.retrain.stats).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """[C, C] counts, true class x predicted class."""
    labels, preds = np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)
    if len(labels) and (min(labels.min(), preds.min()) < 0
                        or max(labels.max(), preds.max()) >= num_classes):
        raise ValueError(f"labels and predictions must lie in [0, {num_classes})")
    return np.bincount(labels * num_classes + preds,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def resampled_confusions(labels: np.ndarray, preds: np.ndarray, idx: np.ndarray,
                         num_classes: int) -> np.ndarray:
    """[k, C, C] confusion matrices of ``preds`` on each row of indices of ``idx`` ([k, n], a
    bootstrap's resamples), in one count."""
    k, cells = len(idx), num_classes * num_classes
    codes = labels[idx] * num_classes + preds[idx] + (np.arange(k) * cells)[:, None]
    return np.bincount(codes.ravel(), minlength=k * cells).reshape(k, num_classes, num_classes)


def f1_of_confusions(conf: np.ndarray) -> np.ndarray:
    """Per-class F1 of each confusion matrix of ``conf`` ([..., C, C]): 2 tp / (2 tp + fp + fn)
    = 2 tp / (predicted + true), 0 for a class neither true nor predicted."""
    tp = np.diagonal(conf, axis1=-2, axis2=-1).astype(np.float64)
    denom = (conf.sum(axis=-2) + conf.sum(axis=-1)).astype(np.float64)
    return np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def macro_f1_of_confusions(conf: np.ndarray) -> np.ndarray:
    """Macro-F1 of each confusion matrix of ``conf`` ([..., C, C]): the mean over all C classes
    of :func:`f1_of_confusions`."""
    return f1_of_confusions(conf).mean(axis=-1)


def classification_metrics(labels: np.ndarray, preds: np.ndarray,
                           label_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class precision / recall / F1 / support."""
    conf = confusion(labels, preds, len(label_names))
    tp = np.diagonal(conf).astype(np.float64)
    predicted, support = conf.sum(axis=0), conf.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = f1_of_confusions(conf)
    total = int(conf.sum())
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1.mean()),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                             "f1": float(f1[i]), "support": int(support[i])}
                      for i, name in enumerate(label_names)},
    }
