"""Paired comparison of the KD student with the CE-only baseline, and the verdict.

* over seeds, on test macro-F1: paired t-test and Wilcoxon signed-rank test;
* over test examples, on the seeds' majority-vote predictions (and on the best seeds'): a paired
  bootstrap confidence interval of the macro-F1 difference and the exact McNemar test on
  per-example correctness (a binomial test on the discordant pairs);
* the minimum detectable effect (MDE) of the paired t-test over seeds, from the noncentral t.

The final verdict (:func:`verdict_statement`) compares the KD student with a *tuned* CE-only
baseline, both re-trained over the same seeds, on the held-out test split. It is exactly one of
three statements, decided by the paired t-test over seeds at level ``alpha``:

* ``kd_better``: the mean per-seed difference is > 0 and p < alpha;
* ``kd_worse``: the mean per-seed difference is < 0 and p < alpha;
* ``no_difference``: otherwise, with the MDE at this number of seeds, so that "no difference"
  reads as "none detectable at this power", not as "none".

(``kd_is_ce`` when the chosen configuration is itself CE-only: nothing to test.) Every interval
is printed beside its own estimate: the t-test CI beside the mean per-seed difference, the
bootstrap CI beside the majority-vote difference.

scipy / scikit-learn do the statistics; nothing here but counting is done by hand.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from kdtune.formatting import fmt_p

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


def _finite(x: Any) -> float | None:
    """``float(x)``, or None when x is None or not finite (JSON has no NaN)."""
    return None if x is None or not math.isfinite(float(x)) else float(x)


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


def _t_interval(seed_tests: dict[str, Any], alpha: float) -> tuple[float | None, float | None, float]:
    """(low, high, confidence) of the paired t-test CI of the mean per-seed difference at 1 - alpha.

    The one in ``seed_tests`` when its confidence is 1 - alpha, else recomputed from the
    differences with scipy (a one-sample t-test on the differences is the paired t-test).
    """
    from scipy import stats

    t = seed_tests.get("t_test", {})
    confidence = 1.0 - alpha
    if t.get("pvalue") is None:
        return None, None, confidence
    if math.isclose(t.get("confidence", CONFIDENCE), confidence):
        return _finite(t.get("ci_low")), _finite(t.get("ci_high")), confidence
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ci = stats.ttest_1samp(np.asarray(seed_tests["differences"]), 0.0).confidence_interval(confidence)
    return _finite(ci.low), _finite(ci.high), confidence


def _points(x: float | None, sign: bool = True) -> str:
    """Macro-F1 units as points (100x) with 2 decimals, ``n/a`` when missing."""
    return "n/a" if x is None else f"{100 * x:{'+' if sign else ''}.2f}"


def _vote_sentence(vote: dict[str, Any]) -> str:
    """The majority-vote difference beside the bootstrap CI of that same difference."""
    boot = vote["bootstrap"]
    level = round(100 * boot.get("confidence", CONFIDENCE))
    return (f" On the seeds' majority-vote predictions the difference is "
            f"{_points(vote['difference'])} points (paired bootstrap {level}% CI "
            f"[{_points(boot['ci_low'])}, {_points(boot['ci_high'])}]; exact McNemar "
            f"p = {fmt_p(vote['mcnemar']['pvalue'])}).")


def verdict_statement(seed_tests: dict[str, Any], vote: dict[str, Any] | None, *,
                      kd_is_ce: bool = False, alpha: float = 0.05, power: float = 0.8) -> dict[str, Any]:
    """The final verdict: KD student vs the tuned CE baseline over seeds, on test macro-F1.

    ``kind`` is ``kd_better`` (mean per-seed difference > 0, paired t-test p < alpha),
    ``kd_worse`` (< 0, p < alpha), ``no_difference`` (otherwise; the text gives the minimum
    detectable effect at this number of seeds) or ``kd_is_ce`` (the chosen configuration is
    CE-only). The t-test CI is printed beside the mean per-seed difference; with ``vote`` (from
    :func:`example_level_tests`) a second sentence gives the majority-vote difference beside its
    own bootstrap CI. Numbers in the dict are macro-F1 units (0.0066); the text prints points.
    """
    n = int(seed_tests["n"])
    mean, sd = _finite(seed_tests["mean_difference"]), _finite(seed_tests.get("std_difference"))
    p = _finite(seed_tests.get("t_test", {}).get("pvalue"))
    lo, hi, confidence = _t_interval(seed_tests, alpha)
    mde = minimum_detectable_effect(sd, n, alpha, power)
    out = {"kind": "no_difference", "text": "", "mean_difference": mean, "ci_low": lo, "ci_high": hi,
           "pvalue": p, "n": n, "mde": mde, "sd_difference": sd, "alpha": alpha, "power": power}
    seeds = f"{n} seed{'s' if n != 1 else ''}"
    facts = (f"{round(100 * confidence)}% CI [{_points(lo)}, {_points(hi)}], "
             f"paired t-test p = {fmt_p(p)}")
    significant = p is not None and mean is not None and p < alpha
    if kd_is_ce:
        out["kind"] = "kd_is_ce"
        out["text"] = ("The chosen configuration is the CE-only baseline itself (alpha = 1): "
                       "there is no KD gain to test.")
        return out
    if significant and mean > 0:
        out["kind"] = "kd_better"
        text = (f"KD beats tuned CE by {_points(mean)} points of test macro-F1 "
                f"(mean over {seeds}, {facts}).")
    elif significant and mean < 0:
        out["kind"] = "kd_worse"
        text = (f"KD is worse than tuned CE by {_points(mean)} points of test macro-F1 "
                f"(mean over {seeds}, {facts}).")
    elif n < 2:
        text = (f"No difference detectable at this power: with {seeds} the difference is "
                f"{_points(mean)} points of test macro-F1, but a paired t-test needs at least 2 "
                "seeds, so there is no test and the minimum detectable effect is unknown.")
    else:
        text = (f"No difference detectable at this power: the mean difference is {_points(mean)} "
                f"points of test macro-F1 ({facts}); the minimum detectable effect at {seeds} is "
                f"{_points(mde, sign=False)} points (paired t-test, two-sided alpha {alpha:g}, "
                f"power {power:g}, SD of the per-seed differences {_points(sd, sign=False)} points).")
    out["text"] = text + (_vote_sentence(vote) if vote is not None else "")
    return out
