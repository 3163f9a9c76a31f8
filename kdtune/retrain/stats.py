"""Paired comparison of the KD student with the CE-only baseline, and the verdict.

* over seeds, on test macro-F1: paired t-test and Wilcoxon signed-rank test;
* over test examples, on the seeds' majority-vote predictions (and on the best seeds'): a paired
  bootstrap confidence interval of the macro-F1 difference and the exact McNemar test on
  per-example correctness (a binomial test on the discordant pairs).

scipy / scikit-learn do the statistics; nothing here but counting is done by hand.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from kdtune.retrain.formatting import fmt_p

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


def example_level_tests(labels: np.ndarray, student: np.ndarray, baseline: np.ndarray,
                        num_classes: int, n_resamples: int, seed: int) -> dict[str, Any]:
    """Paired bootstrap CI of the test macro-F1 difference and exact McNemar on correctness.

    The bootstrap resamples test-example indices with a seeded numpy Generator, the same
    indices for student and baseline, and takes the percentile interval of the differences.
    """
    import sklearn
    from scipy import stats
    from sklearn.metrics import f1_score

    classes = list(range(num_classes))

    def macro_f1(y: np.ndarray, p: np.ndarray) -> float:
        return float(f1_score(y, p, labels=classes, average="macro", zero_division=0))

    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        for i in range(n_resamples):
            idx = rng.integers(0, len(labels), size=len(labels))
            diffs[i] = macro_f1(labels[idx], student[idx]) - macro_f1(labels[idx], baseline[idx])
    tail = (1.0 - CONFIDENCE) / 2
    ci_low, ci_high = np.quantile(diffs, [tail, 1.0 - tail])
    s_ok, b_ok = student == labels, baseline == labels
    only_s, only_b = int(np.sum(s_ok & ~b_ok)), int(np.sum(~s_ok & b_ok))
    discordant = only_s + only_b
    mcnemar = (float(stats.binomtest(only_s, discordant, 0.5).pvalue) if discordant else 1.0)
    return {"student_macro_f1": macro_f1(labels, student),
            "baseline_macro_f1": macro_f1(labels, baseline),
            "difference": macro_f1(labels, student) - macro_f1(labels, baseline),
            "bootstrap": {"ci_low": float(ci_low), "ci_high": float(ci_high),
                          "standard_error": float(diffs.std(ddof=1)),
                          "confidence": CONFIDENCE, "n_resamples": n_resamples,
                          "method": "percentile, paired over test examples", "seed": seed},
            "mcnemar": {"student_only_correct": only_s, "baseline_only_correct": only_b,
                        "both_correct": int(np.sum(s_ok & b_ok)),
                        "both_wrong": int(np.sum(~s_ok & ~b_ok)), "pvalue": mcnemar,
                        "method": "exact (two-sided binomial test on the discordant pairs)"}}


def verdict(chosen_alpha: float, seed_tests: dict[str, Any],
            vote: dict[str, Any]) -> tuple[bool, str]:
    """(gain is real, one line): real when the mean test macro-F1 gain over seeds is positive,
    the paired t-test over seeds gives p < 0.05 and the bootstrap 95% CI of the majority-vote
    macro-F1 difference lies above 0."""
    alpha_level = 1.0 - CONFIDENCE
    if chosen_alpha >= 1.0:
        return False, ("Verdict: the chosen configuration is the CE-only baseline (alpha = 1); "
                       "there is no KD gain to test.")
    gain = seed_tests["mean_difference"]
    p = seed_tests["t_test"]["pvalue"]
    lo, hi = vote["bootstrap"]["ci_low"], vote["bootstrap"]["ci_high"]
    facts = (f"mean test macro-F1 difference {100 * gain:+.2f} points over {seed_tests['n']} "
             f"seed(s), paired t-test p = {fmt_p(p)}, bootstrap 95% CI of the majority-vote "
             f"difference [{100 * lo:+.2f}, {100 * hi:+.2f}] points")
    significant = p is not None and math.isfinite(p) and p < alpha_level
    if gain > 0 and significant and lo > 0:
        return True, f"Verdict: the KD gain is real at 95% ({facts})."
    if gain < 0 and significant and hi < 0:
        return False, f"Verdict: KD is worse than the CE-only baseline at 95% ({facts})."
    why = ("a seed-level test needs --seeds 2 or more" if p is None else
           "the seed-level t-test is not significant" if not significant else
           "the example-level bootstrap CI includes 0" if lo <= 0 <= hi else
           "the seed-level and example-level results disagree")
    return False, f"Verdict: the KD gain is NOT shown at 95%: {why} ({facts})."
