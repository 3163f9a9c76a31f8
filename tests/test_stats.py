"""kdtune.retrain.stats against hand-computed values (each computation is written beside its check).

Closed forms of the Student t CDF used below (x = t / sqrt(df + t^2)):
  df = 2: F(t) = 1/2 + t / (2 sqrt(2 + t^2))
  df = 4: F(t) = 1/2 + (3/8) * t / sqrt(1 + t^2/4) * (1 - t^2 / (12 (1 + t^2/4)))
Table quantiles: t_{0.975,2} = 4.302653, t_{0.975,4} = 2.776445, t_{0.8,4} = 0.940965,
z_{0.975} = 1.959964, z_{0.8} = 0.841621.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from kdtune.metrics import macro_f1_of_confusions
from kdtune.retrain import stats as stats_module
from kdtune.retrain.stats import (
    bootstrap_differences,
    example_level_tests,
    majority_vote,
    minimum_detectable_effect,
    seed_level_tests,
)


def _t4_two_sided_p(t: float) -> float:
    """Two-sided p of a t statistic with df = 4 from the closed-form CDF above."""
    a = 1 + t * t / 4
    cdf = 0.5 + 0.375 * t / math.sqrt(a) * (1 - t * t / (12 * a))
    return 2 * (1 - cdf)


# ---------------------------------------------------------------- seed-level tests


def test_paired_t_test_hand_computed():
    # differences [1, 2, 3]: mean 2, sd sqrt(((-1)^2 + 0 + 1^2) / 2) = 1, se = 1/sqrt(3) = 0.577350
    # t = 2 / 0.577350 = 3.464102, df = 2
    # df = 2: two-sided p = 1 - t / sqrt(2 + t^2) = 1 - 3.464102 / sqrt(14) = 1 - 0.925820 = 0.074180
    # t_{0.975,2}: t / sqrt(2 + t^2) = 0.95 -> t^2 = 0.9025 * 2 / 0.0975 = 18.512821 -> t = 4.302653
    # CI = 2 -/+ 4.302653 * 0.577350 = 2 -/+ 2.484138 = [-0.484138, 4.484138]
    out = seed_level_tests([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert out["n"] == 3
    assert out["differences"] == [1.0, 2.0, 3.0]
    assert out["mean_difference"] == pytest.approx(2.0)
    assert out["std_difference"] == pytest.approx(1.0)
    t = out["t_test"]
    assert t["statistic"] == pytest.approx(3.464102, abs=1e-6)
    assert t["df"] == 2
    assert t["pvalue"] == pytest.approx(0.074180, abs=1e-6)
    assert t["ci_low"] == pytest.approx(-0.484138, abs=1e-6)
    assert t["ci_high"] == pytest.approx(4.484138, abs=1e-6)
    # Wilcoxon, exact: all 3 differences positive, the most extreme of 2^3 = 8 equally likely sign
    # patterns, two-sided p = 2 * 1/8 = 0.25
    assert out["wilcoxon"]["pvalue"] == pytest.approx(0.25)


def test_seed_level_tests_one_seed():
    # one difference: no SD, no test
    out = seed_level_tests([0.8], [0.79])
    assert out["n"] == 1 and out["std_difference"] is None
    assert out["t_test"]["pvalue"] is None and out["wilcoxon"]["pvalue"] is None


# ---------------------------------------------------------------- example-level tests


def test_mcnemar_exact_hand_computed():
    # 8 examples only the student gets right, 2 only the baseline, 3 both, 1 neither (label 0 always)
    # exact McNemar = two-sided binomial test of 2 successes in 10 at 1/2:
    # p = 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 2 * (1 + 10 + 45) / 1024 = 112 / 1024 = 0.109375
    labels = np.zeros(14, dtype=int)
    student = np.array([0] * 8 + [1] * 2 + [0] * 3 + [1])
    baseline = np.array([1] * 8 + [0] * 2 + [0] * 3 + [1])
    out = example_level_tests(labels, student, baseline, num_classes=2, n_resamples=20, seed=0)
    m = out["mcnemar"]
    assert (m["student_only_correct"], m["baseline_only_correct"]) == (8, 2)
    assert (m["both_correct"], m["both_wrong"]) == (3, 1)
    assert m["pvalue"] == pytest.approx(0.109375, abs=1e-12)


def test_bootstrap_identical_predictions_and_seeded():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 1])
    preds = np.array([0, 1, 2, 1, 1, 2, 0, 0, 2, 1])
    # identical student and baseline: every resampled difference is exactly 0 -> CI exactly [0, 0]
    same = example_level_tests(labels, preds, preds.copy(), num_classes=3, n_resamples=200, seed=3)
    assert same["difference"] == 0.0
    assert (same["bootstrap"]["ci_low"], same["bootstrap"]["ci_high"]) == (0.0, 0.0)
    assert same["mcnemar"]["pvalue"] == 1.0  # no discordant pairs
    # the same seed draws the same resamples: the same CI twice
    other = np.array([0, 1, 2, 0, 1, 2, 0, 1, 0, 0])
    a = example_level_tests(labels, other, preds, num_classes=3, n_resamples=200, seed=7)
    b = example_level_tests(labels, other, preds, num_classes=3, n_resamples=200, seed=7)
    assert a["bootstrap"] == b["bootstrap"]


def test_macro_f1_of_a_confusion_matrix_hand_computed():
    # true x predicted, 3 classes; class 2 neither true nor predicted in the second matrix
    conf = np.array([[[3, 1, 0], [0, 2, 2], [1, 0, 1]],
                     [[4, 1, 0], [2, 3, 0], [0, 0, 0]]])
    # first: tp 3, 2, 1; predicted 4, 3, 3; true 4, 4, 2 -> F1 6/8, 4/7, 2/5
    # second: tp 4, 3, 0; predicted 6, 4, 0; true 5, 5, 0 -> F1 8/11, 6/9, 0 (zero_division)
    want = [(6 / 8 + 4 / 7 + 2 / 5) / 3, (8 / 11 + 6 / 9 + 0.0) / 3]
    assert macro_f1_of_confusions(conf) == pytest.approx(want, abs=1e-15)


@pytest.mark.parametrize("n, classes, resamples", [(10, 3, 5), (97, 4, 23),
                                                    (40, 7, 50)])
def test_bootstrap_counts_give_scikit_learns_numbers(n, classes, resamples, monkeypatch):
    """The counted bootstrap against the plain one: for each resample in turn, n indices from
    the seeded Generator and scikit-learn's macro-F1 of both models (a class may be missing
    from a resample, or from every prediction: the 7-class case predicts only 0-4)."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(n)
    labels = rng.integers(0, classes, size=n)
    student = np.where(rng.random(n) < 0.7, labels, rng.integers(0, min(classes, 5), size=n))
    baseline = np.where(rng.random(n) < 0.6, labels, rng.integers(0, min(classes, 5), size=n))

    def f1(y, p):
        return f1_score(y, p, labels=list(range(classes)), average="macro", zero_division=0)

    # chunks of 10 resamples: 23 crosses two chunk boundaries (one [10, n] draw = ten n-draws)
    monkeypatch.setattr(stats_module, "BOOTSTRAP_CELLS", 10 * n)
    draw = np.random.default_rng(11)
    want = []
    for _ in range(resamples):
        idx = draw.integers(0, n, size=n)
        want.append(f1(labels[idx], student[idx]) - f1(labels[idx], baseline[idx]))
    got = bootstrap_differences(labels, student, baseline, classes, resamples, seed=11)
    assert got == pytest.approx(want, abs=1e-12)


def test_majority_vote_with_tie_broken_by_mean_probability():
    # 2 seeds, 3 examples, 3 classes
    # example 0: both seeds say 2 -> 2
    # example 1: seeds say 0 and 1 (tie); mean probs [(0.5+0.05)/2, (0.1+0.5)/2, (0.4+0.45)/2]
    #            = [0.275, 0.300, 0.425]: class 2 has the highest mean probability but no vote, so the
    #            tie between 0 and 1 goes to 1 (0.300 > 0.275)
    # example 2: seeds say 1 and 0 (tie); mean probs [(0.3+0.7)/2, (0.6+0.2)/2, ...] = [0.5, 0.4, 0.1]
    #            -> 0
    predictions = np.array([[2, 0, 1], [2, 1, 0]])
    probs = np.array([
        [[0.1, 0.1, 0.8], [0.5, 0.1, 0.4], [0.3, 0.6, 0.1]],
        [[0.2, 0.1, 0.7], [0.05, 0.5, 0.45], [0.7, 0.2, 0.1]],
    ])
    assert majority_vote(predictions, probs).tolist() == [2, 1, 0]


def test_majority_vote_clear_majority_beats_probability():
    # 3 seeds: votes for example 0 are [1, 1, 0] -> 1 even though mean prob of class 0 is higher
    # (mean probs [(0.45+0.45+0.99)/3, ...] = [0.63, 0.37])
    predictions = np.array([[1], [1], [0]])
    probs = np.array([[[0.45, 0.55]], [[0.45, 0.55]], [[0.99, 0.01]]])
    assert majority_vote(predictions, probs).tolist() == [1]


# ---------------------------------------------------------------- minimum detectable effect


def test_mde_large_n_matches_normal_approximation():
    # (z_{0.975} + z_{0.8}) * sd / sqrt(n) = (1.959964 + 0.841621) * 1 / sqrt(400) = 2.801585 / 20 = 0.140079
    assert minimum_detectable_effect(1.0, 400) == pytest.approx(0.140079, rel=0.005)


def test_mde_small_n_exact_power():
    mde = minimum_detectable_effect(1.0, 5)
    # independent power at the MDE: df = 4, t_crit = t_{0.975,4}, nc = mde * sqrt(5) / 1
    t_crit = sps.t.ppf(0.975, 4)
    nc = mde * math.sqrt(5)
    power = sps.nct.sf(t_crit, 4, nc) + sps.nct.cdf(-t_crit, 4, nc)
    assert power == pytest.approx(0.8, abs=1e-6)
    # normal approximation (1.959964 + 0.841621) / sqrt(5) = 2.801585 / 2.236068 = 1.252907;
    # approximation with t quantiles (2.776445 + 0.940965) / sqrt(5) = 3.717410 / 2.236068 = 1.662476.
    # The exact MDE lies above both: at delta = 1.662476 the exact power is only 0.7913 (< 0.8), so the
    # t-quantile approximation slightly UNDER-states the MDE at df = 4 (by about 1.2%).
    nc_t = 1.662476 * math.sqrt(5)
    at_t_approx = sps.nct.sf(t_crit, 4, nc_t) + sps.nct.cdf(-t_crit, 4, nc_t)
    assert at_t_approx == pytest.approx(0.7913, abs=1e-4)
    assert 1.252907 < 1.662476 < mde < 1.662476 * 1.02
    assert mde == pytest.approx(1.681997, abs=1e-5)


def test_mde_scales_with_sd_and_edge_cases():
    # nc is fixed by (n, alpha, power); the MDE is nc * sd / sqrt(n): linear in sd
    assert minimum_detectable_effect(0.02, 5) == pytest.approx(2 * minimum_detectable_effect(0.01, 5))
    assert minimum_detectable_effect(1.0, 1) is None
    assert minimum_detectable_effect(None, 5) is None
    assert minimum_detectable_effect(float("nan"), 5) is None
    assert minimum_detectable_effect(0.0, 5) == 0.0
    # df = 1 (2 seeds): t_crit = 12.706; the solver must cope with scipy's nct lower tail there
    assert minimum_detectable_effect(1.0, 2) > 1.0
    with pytest.raises(ValueError):
        minimum_detectable_effect(1.0, 5, alpha=0.05, power=0.01)
