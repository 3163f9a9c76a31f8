"""kdtune.metrics against scikit-learn, bit for bit, and one hand-computed confusion."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from kdtune.metrics import classification_metrics, confusion, macro_f1_of_confusions


def test_metrics_of_a_hand_computed_confusion():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    preds = np.array([0, 0, 0, 1, 1, 1, 2, 2, 0, 2])
    # true x predicted: [[3, 1, 0], [0, 2, 2], [1, 0, 1]]
    assert confusion(labels, preds, 3).tolist() == [[3, 1, 0], [0, 2, 2], [1, 0, 1]]
    m = classification_metrics(labels, preds, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(6 / 10)
    # tp 3, 2, 1; predicted 4, 3, 3; true 4, 4, 2
    assert m["per_class"]["a"] == pytest.approx({"precision": 3 / 4, "recall": 3 / 4,
                                                 "f1": 6 / 8, "support": 4})
    assert m["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 4,
                                                 "f1": 4 / 7, "support": 4})
    assert m["per_class"]["c"] == pytest.approx({"precision": 1 / 3, "recall": 1 / 2,
                                                 "f1": 2 / 5, "support": 2})
    assert m["macro_f1"] == pytest.approx((6 / 8 + 4 / 7 + 2 / 5) / 3)
    # a class neither true nor predicted scores 0 (scikit-learn's zero_division=0)
    assert macro_f1_of_confusions(confusion([0, 1], [0, 1], 3)) == pytest.approx(2 / 3)


@pytest.mark.parametrize("n, classes, seed", [(50, 2, 0), (400, 4, 1), (97, 7, 2), (5, 6, 3)])
def test_the_same_numbers_as_scikit_learn(n, classes, seed):
    """Random labels and noisy predictions; with 7 and 6 classes some classes are never
    predicted, or never true: scikit-learn's zero-division rule applies."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n)
    preds = np.where(rng.random(n) < 0.6, labels, rng.integers(0, min(classes, 5), size=n))
    names = [f"c{i}" for i in range(classes)]
    got = classification_metrics(labels, preds, names)
    ks = list(range(classes))
    p, r, f, s = precision_recall_fscore_support(labels, preds, labels=ks, zero_division=0)
    assert got["accuracy"] == accuracy_score(labels, preds)
    assert got["macro_f1"] == f1_score(labels, preds, labels=ks, average="macro", zero_division=0)
    for i, name in enumerate(names):
        assert got["per_class"][name] == {"precision": p[i], "recall": r[i], "f1": f[i],
                                          "support": s[i]}


def test_a_label_outside_the_classes_is_an_error():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        confusion([0, 3], [0, 1], 3)
