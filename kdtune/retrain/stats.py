"""Paired comparison of the KD student with the CE-only baseline, and the verdict.

* over seeds, on test macro-F1: paired t-test and Wilcoxon signed-rank test;
* over test examples, on the seeds' majority-vote predictions (and on the best seeds'): a paired
  bootstrap confidence interval of the macro-F1 difference and the exact McNemar test on
  per-example correctness (a binomial test on the discordant pairs);
* the minimum detectable effect (MDE) of the paired t-test over seeds, from the noncentral t.

The decision built on these lives in :mod:`kdtune.retrain.decision`.

scipy does the statistics; macro-F1 is counted from confusion matrices (kdtune.metrics, the
same numbers as scikit-learn's), a chunk of bootstrap resamples at a time.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from kdtune.metrics import confusion, macro_f1_of_confusions, resampled_confusions

CONFIDENCE = 0.95


def mean_std(values: list[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof=1; None with a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) >= 2 else None,
            "n": len(arr)}


def _warned(caught: list[warnings.WarningMessage]) -> list[str]:
    """The distinct first lines of the warnings a test raised."""
    return sorted({str(w.message).splitlines()[0] for w in caught})


def seed_level_tests(student: list[float], baseline: list[float]) -> dict[str, Any]:
    """Paired t-test and Wilcoxon signed-rank test of student - baseline over seeds."""
    from scipy import stats

    s, b = np.asarray(student, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    diff = s - b
    out: dict[str, Any] = {"n": len(diff), "differences": diff.tolist(),
                           "mean_difference": float(diff.mean()),
                           "std_difference": float(diff.std(ddof=1)) if len(diff) >= 2 else None}
    if len(diff) < 2:
        note = "needs at least 2 seeds (--seeds 2 or more)"
        out["t_test"] = {"statistic": None, "pvalue": None, "note": note}
        out["wilcoxon"] = {"statistic": None, "pvalue": None, "note": note}
        return out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = stats.ttest_rel(s, b)
        ci = t.confidence_interval(CONFIDENCE)
    out["t_test"] = {"statistic": float(t.statistic), "pvalue": float(t.pvalue), "df": int(t.df),
                     "ci_low": float(ci.low), "ci_high": float(ci.high),
                     "confidence": CONFIDENCE, "warnings": _warned(caught)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            w = stats.wilcoxon(s, b)
            out["wilcoxon"] = {"statistic": float(w.statistic), "pvalue": float(w.pvalue)}
        except ValueError as exc:
            out["wilcoxon"] = {"statistic": None, "pvalue": None, "note": str(exc)}
    out["wilcoxon"]["warnings"] = _warned(caught)
    if len(diff) < 6 and "note" not in out["wilcoxon"]:
        out["wilcoxon"]["note"] = (f"with {len(diff)} seeds the smallest possible two-sided "
                                   "p-value is above 0.05")
    return out


def majority_vote(predictions: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-example majority vote over seeds ([seeds, n]); ties go to the higher mean probability."""
    num_classes = probs.shape[-1]
    votes = (predictions[..., None] == np.arange(num_classes)).sum(axis=0)  # [n, C]
    return (votes + 0.5 * probs.mean(axis=0)).argmax(axis=-1)  # mean prob < 1 only breaks ties


#: Indices drawn and counted at once in the bootstrap (resamples x test rows; 32 MB of int64).
BOOTSTRAP_CELLS = 2**22


def bootstrap_differences(labels: np.ndarray, student: np.ndarray, baseline: np.ndarray,
                          num_classes: int, n_resamples: int, seed: int) -> np.ndarray:
    """Macro-F1(student) - macro-F1(baseline) on ``n_resamples`` paired resamples of the test
    examples (the same indices for both; a seeded numpy Generator draws each resample's n
    indices in turn). Counted as confusion matrices, a chunk of resamples at a time: the same
    numbers as scikit-learn per resample (tests/test_stats.py), 0.25 s against 7.8 s for
    2,000 resamples of 7,600 rows."""
    labels, student, baseline = (np.asarray(a, dtype=np.int64) for a in (labels, student, baseline))
    rng, n = np.random.default_rng(seed), len(labels)
    chunk = max(1, BOOTSTRAP_CELLS // max(n, 1))
    diffs = []
    for start in range(0, n_resamples, chunk):
        # one draw of [k, n] gives the very indices k successive draws of n would
        idx = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
        diffs.append(macro_f1_of_confusions(resampled_confusions(labels, student, idx, num_classes))
                     - macro_f1_of_confusions(resampled_confusions(labels, baseline, idx,
                                                                   num_classes)))
    return np.concatenate(diffs) if diffs else np.empty(0)


def example_level_tests(labels: np.ndarray, student: np.ndarray, baseline: np.ndarray,
                        num_classes: int, n_resamples: int, seed: int) -> dict[str, Any]:
    """Paired bootstrap CI of the test macro-F1 difference and exact McNemar on correctness.

    The bootstrap resamples test-example indices with a seeded numpy Generator, the same
    indices for student and baseline, and takes the percentile interval of the differences.
    """
    from scipy import stats

    s_f1, b_f1 = (float(macro_f1_of_confusions(confusion(labels, p, num_classes)))
                  for p in (student, baseline))
    diffs = bootstrap_differences(labels, student, baseline, num_classes, n_resamples, seed)
    tail = (1.0 - CONFIDENCE) / 2
    ci_low, ci_high = np.quantile(diffs, [tail, 1.0 - tail])
    s_ok, b_ok = student == labels, baseline == labels
    only_s, only_b = int(np.sum(s_ok & ~b_ok)), int(np.sum(~s_ok & b_ok))
    discordant = only_s + only_b
    mcnemar = (float(stats.binomtest(only_s, discordant, 0.5).pvalue) if discordant else 1.0)
    return {"student_macro_f1": s_f1, "baseline_macro_f1": b_f1, "difference": s_f1 - b_f1,
            "bootstrap": {"ci_low": float(ci_low), "ci_high": float(ci_high),
                          "standard_error": float(diffs.std(ddof=1)),
                          "confidence": CONFIDENCE, "n_resamples": n_resamples,
                          "method": "percentile, paired over test examples", "seed": seed},
            "mcnemar": {"student_only_correct": only_s, "baseline_only_correct": only_b,
                        "both_correct": int(np.sum(s_ok & b_ok)),
                        "both_wrong": int(np.sum(~s_ok & ~b_ok)), "pvalue": mcnemar,
                        "method": "exact (two-sided binomial test on the discordant pairs)"}}


def minimum_detectable_effect(sd_diff: float | None, n: int, alpha: float = 0.05,
                              power: float = 0.8) -> float | None:
    """Minimum detectable effect of a two-sided paired t-test on ``n`` per-seed differences.

    The smallest true mean difference delta that the test detects with probability ``power``
    at level ``alpha`` when the differences have standard deviation ``sd_diff``. With
    df = n - 1, t_crit = t_{1 - alpha/2, df} and T ~ noncentral t(df, nc = delta * sqrt(n) / sd)::

        power(delta) = P(T > t_crit) + P(T < -t_crit)
                     = nct.sf(t_crit, df, nc) + nct.sf(t_crit, df, -nc)

    and the MDE is the root of power(delta) = ``power`` (scipy.optimize.brentq on nc). For large n
    it tends to (z_{1-alpha/2} + z_{power}) * sd / sqrt(n). None when n < 2 or sd_diff is
    None/NaN; 0.0 when sd_diff == 0. Same units as ``sd_diff``.
    """
    from scipy import optimize, stats

    if not 0.0 < alpha < power < 1.0:
        raise ValueError(f"need 0 < alpha < power < 1, got alpha={alpha}, power={power}")
    if n < 2 or sd_diff is None or not math.isfinite(sd_diff):
        return None
    if sd_diff == 0:
        return 0.0
    df = n - 1
    t_crit = float(stats.t.ppf(1.0 - alpha / 2, df))

    def excess_power(nc: float) -> float:
        # P(T < -t_crit) as P(-T > t_crit) with -T ~ nct(df, -nc): scipy's nct.cdf returns NaN
        # deep in the lower tail, nct.sf underflows cleanly to 0.
        return float(stats.nct.sf(t_crit, df, nc) + stats.nct.sf(t_crit, df, -nc)) - power

    hi = t_crit + float(stats.norm.ppf(power)) + 1.0
    while excess_power(hi) < 0:  # power(0) = alpha < power; power rises to 1 as nc grows
        hi *= 2.0
    nc = optimize.brentq(excess_power, 0.0, hi, xtol=1e-12, rtol=1e-12)
    return float(nc * abs(sd_diff) / math.sqrt(n))
