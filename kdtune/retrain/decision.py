"""The final decision: is the KD student better than, worse than, or equivalent to tuned CE?

Over the per-seed differences ``d = KD - CE`` of test macro-F1 (fresh seeds, the same for
both models), at a look with ``n`` seeds, mean ``m``, SD ``s``, standard error ``se = s / sqrt(n)``,
the superiority boundary ``c`` and the equivalence boundary ``e`` of
:class:`~kdtune.retrain.sequential.Design` (the fixed-sample t quantiles with one look):

* ``kd_better`` / ``kd_worse``: ``|m / se| >= c`` (the paired t-test, two-sided), by the sign of m;
* ``equivalent``: the two one-sided tests (TOST, Schuirmann 1987) both reject at the margin
  ``M``: ``(m + M) / se >= e`` and ``(m - M) / se <= -e``, i.e. the interval ``m -/+ e * se``
  lies inside ``(-M, +M)``;
* ``inconclusive``: neither; the statement gives the number of seeds that would most likely
  decide (80% power at the observed mean and SD, :func:`seeds_to_decide`).

A significant difference that also lies inside the margin is reported as better / worse with
``within_margin`` true (real, but smaller than what the user called relevant). With zero
variance (identical runs, a constant difference) there is no test: the constant difference is
the answer (equivalent when inside the margin) and no p-value is printed. :func:`classify` is the
one rule, vectorised, so the error-rate simulation (tests/test_decision.py) runs this very code.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kdtune.formatting import fmt_p, interval, points
from kdtune.retrain.sequential import Design

KINDS = ("kd_better", "kd_worse", "equivalent", "inconclusive")
BETTER, WORSE, EQUIVALENT, INCONCLUSIVE = range(4)
MAX_SEEDS_ADVISED = 1000  # how far seeds_to_decide looks
MAX_SEEDS_RUN = 100  # the most seeds --max-seeds accepts


def classify(mean: np.ndarray, sd: np.ndarray, n: np.ndarray | int, c: float, e: float,
             margin: float) -> np.ndarray:
    """Index into :data:`KINDS` per element (better / worse first, then equivalent)."""
    mean, sd = np.asarray(mean, dtype=np.float64), np.asarray(sd, dtype=np.float64)
    se = sd / np.sqrt(n)
    zero = ~(se > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(zero, 0.0, mean / np.where(zero, 1.0, se))
    significant = np.where(zero, np.abs(mean) >= margin, np.abs(t) >= c)
    inside = np.where(zero, np.abs(mean) < margin,
                      (mean - e * se > -margin) & (mean + e * se < margin))
    kind = np.full(mean.shape, INCONCLUSIVE)
    kind = np.where(inside, EQUIVALENT, kind)
    return np.where(significant, np.where(mean > 0, BETTER, WORSE), kind)


def mde_range(mde: float | None, sd: float | None, n: int) -> tuple[float | None, float | None]:
    """The MDE over the 95% interval of the SD it rests on (chi-square, n - 1 df): the MDE is
    proportional to the SD, so its range is ``mde * sqrt(df / chi2_{0.975, df})`` to
    ``mde * sqrt(df / chi2_{0.025, df})``."""
    from scipy.stats import chi2

    if mde is None or sd is None or n < 2:
        return None, None
    df = n - 1
    return (float(mde * math.sqrt(df / chi2.ppf(0.975, df))),
            float(mde * math.sqrt(df / chi2.ppf(0.025, df))))


def _tost_power(mean: float, sd: float, n: int, margin: float, alpha: float) -> float:
    """Approximate power of TOST at true mean ``mean`` and SD ``sd`` with ``n`` seeds:
    P(T_low > t_c) + P(T_up < -t_c) - 1 with noncentral t (Phillips 1990's lower bound)."""
    from scipy.stats import nct
    from scipy.stats import t as student_t

    df, se = n - 1, sd / math.sqrt(n)
    tc = float(student_t.ppf(1 - alpha, df))
    return float(nct.sf(tc, df, (mean + margin) / se) + nct.cdf(-tc, df, (mean - margin) / se) - 1)


def seeds_to_decide(mean: float, sd: float, margin: float, alpha: float, equivalence_alpha: float,
                    power: float) -> dict[str, Any] | None:
    """Fewest seeds at which a fixed-sample test would decide with probability ``power`` if the
    observed mean and SD were the truth: superiority (paired t, noncentral t power) or, when the
    mean is inside the margin, equivalence (TOST). None when neither would within 1,000 seeds."""
    from kdtune.retrain.stats import minimum_detectable_effect

    def first(ok: Any) -> int | None:
        lo, hi = 2, MAX_SEEDS_ADVISED
        if not ok(hi):
            return None
        while lo < hi:  # both powers rise with n
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if ok(mid) else (mid + 1, hi)
        return lo

    if sd <= 0:
        return None
    options = []
    if mean != 0:
        n = first(lambda k: minimum_detectable_effect(sd, k, alpha, power) <= abs(mean))
        if n is not None:
            options.append({"seeds": n, "decision": "kd_better" if mean > 0 else "kd_worse"})
    if abs(mean) < margin:
        n = first(lambda k: _tost_power(mean, sd, k, margin, equivalence_alpha) >= power)
        if n is not None:
            options.append({"seeds": n, "decision": "equivalent"})
    return min(options, key=lambda o: o["seeds"]) if options else None


def _pvalues(mean: float, se: float, n: int, margin: float) -> tuple[float, float]:
    """(two-sided paired t p, TOST p = the larger one-sided p at the margin)."""
    from scipy.stats import t as student_t

    df = n - 1
    p_sup = float(2 * student_t.sf(abs(mean) / se, df))
    p_eq = max(float(student_t.sf((mean + margin) / se, df)),
               float(student_t.cdf((mean - margin) / se, df)))
    return p_sup, p_eq


def decide(differences: list[float], design: Design, look: int | None = None,
           final: bool = True, other: str = "tuned CE") -> dict[str, Any]:
    """The decision at ``look`` (index into ``design.looks``; default the last one reached).

    Numbers are macro-F1 units (0.0066); the text prints points. ``final`` False marks an
    interim look (an inconclusive result there means "add seeds", not the answer). ``other``
    names what KD is compared with in the text (``tuned CE``, or ``self-training``).
    """
    d = np.asarray(differences, dtype=np.float64)
    n = len(d)
    look = _look_index(design, n) if look is None else look
    c, e = design.superiority()[look], design.equivalence()[look]
    mean = float(d.mean()) if n else None
    sd = float(d.std(ddof=1)) if n >= 2 else None
    out: dict[str, Any] = {
        "kind": "inconclusive", "text": "", "n": n, "look": look + 1, "looks": len(design.looks),
        "mean_difference": mean, "sd_difference": sd, "margin": design.margin,
        "alpha": design.alpha, "equivalence_alpha": design.equivalence_alpha,
        "spending": design.spending if design.sequential else None,
        "superiority_t": c, "equivalence_t": e, "ci_low": None, "ci_high": None,
        "equivalence_ci_low": None, "equivalence_ci_high": None, "pvalue": None,
        "equivalence_pvalue": None, "within_margin": None, "zero_variance": False,
        "mde": None, "mde_low": None, "mde_high": None, "power": design.power, "seeds_needed": None}
    if n < 2:
        out["text"] = (f"Inconclusive: with {n} seed{'s' if n != 1 else ''} the difference is "
                       f"{points(mean)} points of test macro-F1, but a paired test needs at least "
                       "2 seeds; run more seeds (--seeds auto).")
        return out
    kind = KINDS[int(classify(np.array(mean), np.array(sd), n, c, e, design.margin))]
    out["kind"] = kind
    if sd == 0:
        return _zero_variance(out, mean, n, design.margin, other)
    _fill_numbers(out, mean, sd, n, c, e, design)
    out["text"] = _statement(out, design, final, other)
    return out


def _look_index(design: Design, n: int) -> int:
    reached = [i for i, k in enumerate(design.looks) if k <= n]
    return reached[-1] if reached else 0


def _fill_numbers(out: dict[str, Any], mean: float, sd: float, n: int, c: float, e: float,
                  design: Design) -> None:
    from kdtune.retrain.stats import minimum_detectable_effect

    se = sd / math.sqrt(n)
    p_sup, p_eq = _pvalues(mean, se, n, design.margin)
    mde = minimum_detectable_effect(sd, n, design.alpha, design.power)
    lo, hi = mde_range(mde, sd, n)
    out.update(ci_low=mean - c * se, ci_high=mean + c * se, equivalence_ci_low=mean - e * se,
               equivalence_ci_high=mean + e * se, pvalue=p_sup, equivalence_pvalue=p_eq,
               within_margin=bool(mean - e * se > -design.margin and mean + e * se < design.margin),
               mde=mde, mde_low=lo, mde_high=hi)
    if out["kind"] == "inconclusive":
        out["seeds_needed"] = seeds_to_decide(mean, sd, design.margin, design.alpha,
                                              design.equivalence_alpha, design.power)


def _levels(out: dict[str, Any], design: Design) -> tuple[str, str, str]:
    """How the two intervals are named, and the look clause."""
    if not design.sequential:
        return (f"{round(100 * (1 - design.alpha))}% CI",
                f"{round(100 * (1 - 2 * design.equivalence_alpha))}% CI", "")
    name = {"obrien-fleming": "O'Brien-Fleming", "pocock": "Pocock"}[design.spending]
    return ("repeated CI", "repeated equivalence CI",
            f", look {out['look']} of at most {out['looks']} ({name} alpha spending)")


def _statement(out: dict[str, Any], design: Design, final: bool, other: str) -> str:
    n, mean, margin = out["n"], out["mean_difference"], design.margin
    sup_name, eq_name, look = _levels(out, design)
    seeds = f"{n} fresh seeds{look}"
    nominal = "nominal " if design.sequential else ""
    sup = (f"{sup_name} {interval(out['ci_low'], out['ci_high'])}, {nominal}paired "
           f"t-test p = {fmt_p(out['pvalue'])}")
    eq = (f"{eq_name} {interval(out['equivalence_ci_low'], out['equivalence_ci_high'])}, "
          f"{nominal}two one-sided tests p = {fmt_p(out['equivalence_pvalue'])}")
    m = points(margin, sign=False)
    kind = out["kind"]
    if kind in ("kd_better", "kd_worse"):
        verb = f"KD beats {other} by" if kind == "kd_better" else f"KD is worse than {other} by"
        text = f"{verb} {points(mean)} points of test macro-F1 (mean over {seeds}, {sup})."
        if out["within_margin"]:
            text += (f" The difference is real but inside the ±{m}-point equivalence margin "
                     f"({eq}): negligible by the margin you set.")
        return text
    if kind == "equivalent":
        return (f"KD and {other} are equivalent within ±{m} points of test macro-F1: the mean "
                f"difference is {points(mean)} points over {seeds} ({eq}, inside the margin; "
                f"{sup}).")
    return _inconclusive(out, seeds, sup, eq, m, final)


def _inconclusive(out: dict[str, Any], seeds: str, sup: str, eq: str, m: str, final: bool) -> str:
    head = "Inconclusive" if final else "Not decided yet"
    text = (f"{head} after {seeds}: the mean difference is {points(out['mean_difference'])} points "
            f"of test macro-F1 ({sup}), not significant, and its {eq} is not inside the "
            f"±{m}-point equivalence margin.")
    text += (f" The minimum detectable effect at {out['n']} seeds is {points(out['mde'], sign=False)} "
             f"points ({points(out['mde_low'], sign=False)}-{points(out['mde_high'], sign=False)} over the "
             f"95% interval of the SD of the per-seed differences, "
             f"{points(out['sd_difference'], sign=False)} points).")
    need = out["seeds_needed"]
    if need is None:
        text += (f" At the observed mean and SD no number of seeds up to {MAX_SEEDS_ADVISED} would "
                 "likely decide: the difference sits at the margin.")
    else:
        word = {"kd_better": "KD better", "kd_worse": "KD worse", "equivalent": "equivalence"}
        text += (f" If the observed mean and SD hold, about {need['seeds']} seeds would decide "
                 f"({word[need['decision']]}, {round(100 * out['power'])}% power)")
        text += (f": --seeds auto --max-seeds {max(need['seeds'], out['n'] + 1)}."
                 if need["seeds"] <= MAX_SEEDS_RUN else
                 "; more seeds than a retrain runs: more data, or a margin that matters to you.")
    return text


def _zero_variance(out: dict[str, Any], mean: float, n: int, margin: float,
                   other: str) -> dict[str, Any]:
    out["zero_variance"] = True
    out["ci_low"] = out["ci_high"] = out["equivalence_ci_low"] = out["equivalence_ci_high"] = mean
    out["within_margin"] = abs(mean) < margin
    m = points(margin, sign=False)
    if mean == 0:
        lead = f"The two models scored identically on all {n} seeds (difference 0 on every seed)"
    else:
        lead = (f"KD differs from {other} by exactly {points(mean)} points of test macro-F1 on "
                f"every one of {n} seeds")
    verdict = {"equivalent": f"equivalent within ±{m} points",
               "kd_better": f"KD better, by more than the ±{m}-point margin",
               "kd_worse": f"KD worse, by more than the ±{m}-point margin"}[out["kind"]]
    out["text"] = (f"{lead}: with no seed-to-seed variation there is no test and no p-value; "
                   f"the constant difference is the answer ({verdict}). Check that the seeds "
                   "really change the runs.")
    return out


def vote_sentence(vote: dict[str, Any]) -> str:
    """The majority-vote difference beside the bootstrap CI of that same difference."""
    boot = vote["bootstrap"]
    level = round(100 * boot.get("confidence", 0.95))
    return (f" On the seeds' majority-vote predictions the difference is "
            f"{points(vote['difference'])} points (paired bootstrap {level}% CI "
            f"{interval(boot['ci_low'], boot['ci_high'])}; exact McNemar "
            f"p = {fmt_p(vote['mcnemar']['pvalue'])}).")


def kd_is_ce(design: Design, n: int) -> dict[str, Any]:
    """When the recommended configuration is itself CE-only there is nothing to compare."""
    out = decide([], design)
    out.update(kind="equivalent", n=n, same_model=True,
               text="The chosen configuration is the CE-only baseline itself (alpha = 1): there "
                    "is no KD gain to test; the two are the same model.")
    return out
