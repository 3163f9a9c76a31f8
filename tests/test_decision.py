"""The four-way decision and the group-sequential design, against hand-computed values and by
simulation (thousands of simulated seed sequences, no training).

Closed forms used below: t_{0.975,4} = 2.776445, t_{0.95,4} = 2.131847 (table quantiles);
chi2_{0.975,4} = 11.143287, chi2_{0.025,4} = 0.484419.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from kdtune.retrain.decision import (
    BETTER,
    EQUIVALENT,
    INCONCLUSIVE,
    WORSE,
    classify,
    decide,
    mde_range,
    seeds_to_decide,
)
from kdtune.retrain.sequential import Design, boundaries, schedule, spent
from kdtune.retrain.ship import ship_choice

FIXED5 = Design.fixed(5)  # one look at 5 seeds, margin 0.5 points


# ---------------------------------------------------------------- design


def test_spending_functions_hand_computed():
    # O'Brien-Fleming (Lan-DeMets): 2 - 2 Phi(1.959964 / sqrt(0.25)) = 2 - 2 Phi(3.919928)
    # = 2 * 4.4295e-5 = 8.859e-5; at tau = 1 the whole alpha
    assert spent("obrien-fleming", 0.05, 0.25) == pytest.approx(8.859e-5, rel=1e-3)
    assert spent("obrien-fleming", 0.05, 1.0) == pytest.approx(0.05, abs=1e-12)
    # Pocock: 0.05 * ln(1 + (e - 1) * 0.5) = 0.05 * ln(1.859141) = 0.05 * 0.620115 = 0.031006
    assert spent("pocock", 0.05, 0.5) == pytest.approx(0.0310058, abs=1e-6)
    assert spent("pocock", 0.05, 1.0) == pytest.approx(0.05, abs=1e-12)


def test_schedule_first_look_rounds_and_last():
    assert schedule(10) == (3, 5, 7, 9, 10)
    assert schedule(10, 3, 3) == (3, 6, 9, 10)
    assert schedule(4, 3, 2) == (3, 4)
    assert schedule(2) == (2,)


def test_one_look_is_the_fixed_sample_t_test():
    assert FIXED5.superiority() == (pytest.approx(2.776445, abs=1e-6),)  # t_{0.975,4}
    assert FIXED5.equivalence() == (pytest.approx(2.131847, abs=1e-6),)  # t_{0.95,4}
    assert not FIXED5.sequential


def test_sequential_boundaries_are_stricter_than_one_look_and_obf_shape():
    d = Design(schedule(10))
    sup = d.superiority()
    # every look is stricter than the fixed-sample test at its own seed count
    from scipy.stats import t

    for n, c in zip(d.looks, sup, strict=True):
        assert c > t.ppf(0.975, n - 1)
    # O'Brien-Fleming spends little early: the first boundary far above the last
    assert sup[0] > 10 * sup[-1]
    # Pocock spends more evenly: a lower first boundary, a higher last one
    p = Design(schedule(10), spending="pocock").superiority()
    assert p[0] < sup[0] and p[-1] > sup[-1]
    # deterministic (seeded) and cached
    assert boundaries(d.looks, 0.05, "obrien-fleming", 2) == sup


# ---------------------------------------------------------------- decision, hand-computed


# differences [8, 10, 9, 8, 10] * 1e-3 (KD - CE): mean 9e-3, deviations [-1, 1, 0, -1, 1] e-3,
# squares 4e-6, var 1e-6, sd 1e-3, se = 1e-3 / sqrt(5) = 4.472136e-4, t = 20.1246
# 95% CI = 9e-3 -/+ 2.776445 * 4.472136e-4 = 9e-3 -/+ 1.241663e-3 = [7.758e-3, 1.0242e-2]
BETTER_DIFFS = [0.008, 0.010, 0.009, 0.008, 0.010]


def test_kd_better_hand_computed_interval_beside_estimate():
    out = decide(BETTER_DIFFS, FIXED5)
    assert out["kind"] == "kd_better"
    assert out["mean_difference"] == pytest.approx(0.009)
    assert out["ci_low"] == pytest.approx(0.0077583, abs=1e-6)
    assert out["ci_high"] == pytest.approx(0.0102417, abs=1e-6)
    assert out["within_margin"] is False  # 0.9 points is beyond the 0.5-point margin
    assert out["text"].startswith("KD beats tuned CE by +0.90 points of test macro-F1 (mean over 5 "
                                  "fresh seeds, 95% CI [+0.78, +1.02], paired t-test p = ")
    json.dumps(out, allow_nan=False)


def test_kd_worse_mirrors():
    out = decide([-d for d in BETTER_DIFFS], FIXED5)
    assert out["kind"] == "kd_worse"
    assert "KD is worse than tuned CE by -0.90 points" in out["text"]
    assert "[-1.02, -0.78]" in out["text"]


def test_equivalent_hand_computed():
    # differences [1, -1, 2, 0, -2] * 1e-3: mean 0, sd = sqrt(10e-6 / 4) = 1.581139e-3,
    # se = 7.071068e-4; equivalence (90%) CI = 0 -/+ 2.131847 * 7.071068e-4 = -/+ 1.507443e-3
    # -> [-0.15, +0.15] points, inside +-0.50 -> equivalent
    # TOST p = P(t_4 > 5e-3 / 7.071068e-4 = 7.0711) = 0.0010515 (closed form for df 4 below)
    out = decide([0.001, -0.001, 0.002, 0.0, -0.002], FIXED5)
    assert out["kind"] == "equivalent"
    assert out["equivalence_ci_low"] == pytest.approx(-1.507443e-3, abs=1e-8)
    assert out["equivalence_ci_high"] == pytest.approx(1.507443e-3, abs=1e-8)
    t = 7.0710678
    a = 1 + t * t / 4
    p_one = 1 - (0.5 + 0.375 * t / math.sqrt(a) * (1 - t * t / (12 * a)))
    assert out["equivalence_pvalue"] == pytest.approx(p_one, rel=1e-4)
    assert out["text"].startswith("KD and tuned CE are equivalent within ±0.50 points of test macro-F1")
    assert "90% CI [-0.15, +0.15]" in out["text"]


def test_significant_but_inside_the_margin_says_so():
    # differences [2, 2.2, 1.8, 2.1, 1.9] * 1e-3: mean 2e-3, sd 1.581139e-4, se 7.071e-5:
    # t = 28.3 (significant), 90% CI 2e-3 -/+ 1.5e-4 inside +-5e-3
    out = decide([0.002, 0.0022, 0.0018, 0.0021, 0.0019], FIXED5)
    assert out["kind"] == "kd_better" and out["within_margin"] is True
    assert "inside the ±0.50-point equivalence margin" in out["text"]


def test_inconclusive_states_seeds_needed_and_mde_range():
    # differences [8, -2, 8, -2, 3] * 1e-3: mean 3e-3, sd 5e-3 (see test_stats); p = 0.2508
    # MDE = 1.681997 * 5e-3 = 8.40998e-3; range x sqrt(4 / 11.143287) = 0.599133 and
    # x sqrt(4 / 0.484419) = 2.873560 -> [5.0387e-3, 2.41665e-2]
    out = decide([0.008, -0.002, 0.008, -0.002, 0.003], FIXED5)
    assert out["kind"] == "inconclusive"
    assert out["mde"] == pytest.approx(8.40998e-3, abs=1e-7)
    assert out["mde_low"] / out["mde"] == pytest.approx(0.599133, rel=1e-5)
    assert out["mde_high"] / out["mde"] == pytest.approx(2.873560, rel=1e-5)
    need = out["seeds_needed"]
    # superiority needs MDE(5e-3, n) <= 3e-3: about (1.96 + 0.84)^2 * (5/3)^2 = 21.8 + small-n
    # correction -> 24; equivalence (|3e-3| < 5e-3) needs more, so superiority is quoted
    assert need["decision"] == "kd_better" and 22 <= need["seeds"] <= 26
    assert f"about {need['seeds']} seeds would decide (KD better, 80% power)" in out["text"]
    assert "0.84 points (0.50-2.42 over the 95% interval of the SD" in out["text"]


def test_seeds_to_decide_equivalence_when_mean_is_small():
    need = seeds_to_decide(0.0005, 0.004, 0.005, 0.05, 0.05, 0.8)
    assert need["decision"] == "equivalent"
    # TOST at mean 0.05 points, SD 0.4, margin 0.5 points: n ~ (1.645 + 1.28)^2 (0.4/0.45)^2 ~ 7
    assert 6 <= need["seeds"] <= 10


def test_mde_range_hand_computed():
    lo, hi = mde_range(0.0075, 0.0045, 5)
    assert lo == pytest.approx(0.0075 * math.sqrt(4 / 11.143287), rel=1e-6)
    assert hi == pytest.approx(0.0075 * math.sqrt(4 / 0.484419), rel=1e-6)
    assert mde_range(None, None, 5) == (None, None)


# ---------------------------------------------------------------- edge cases


def test_identical_runs_have_no_p_value():
    out = decide([0.0, 0.0, 0.0], Design.fixed(3))
    assert out["zero_variance"] and out["pvalue"] is None and out["kind"] == "equivalent"
    assert "identically on all 3 seeds" in out["text"] and "no p-value" in out["text"]
    assert "e-" not in out["text"]  # never a spurious p = 1.37e-29
    json.dumps(out, allow_nan=False)


def test_constant_difference_has_no_p_value():
    out = decide([0.01] * 4, Design.fixed(4))
    assert out["kind"] == "kd_better" and out["pvalue"] is None and out["zero_variance"]
    assert "exactly +1.00 points" in out["text"] and "no p-value" in out["text"]
    small = decide([0.001] * 4, Design.fixed(4))  # inside the margin: equivalent, no test
    assert small["kind"] == "equivalent" and small["pvalue"] is None


def test_kd_is_ce_is_the_same_model():
    from kdtune.retrain.decision import kd_is_ce

    out = kd_is_ce(FIXED5, 5)
    assert out["kind"] == "equivalent" and out["same_model"] and "CE-only" in out["text"]
    assert ship_choice(out, {"student": [], "baseline": []}, {"student": 1, "baseline": 1})[
        "model"] == "student"


def test_vote_sentence_puts_the_bootstrap_ci_beside_the_vote_difference():
    from kdtune.retrain.decision import vote_sentence

    vote = {"difference": 0.0119, "bootstrap": {"ci_low": -0.0021, "ci_high": 0.0258,
                                                "confidence": 0.95}, "mcnemar": {"pvalue": 0.40}}
    assert vote_sentence(vote) == (" On the seeds' majority-vote predictions the difference is "
                                   "+1.19 points (paired bootstrap 95% CI [-0.21, +2.58]; exact "
                                   "McNemar p = 0.4).")


def test_one_seed_is_inconclusive():
    out = decide([0.01], Design.fixed(1))
    assert out["kind"] == "inconclusive" and out["pvalue"] is None
    assert "at least 2 seeds" in out["text"]


def test_ship_follows_the_decision():
    none = {"student": [], "baseline": []}
    same = {"student": 100, "baseline": 100}
    assert ship_choice({"kind": "kd_better"}, none, same)["model"] == "student"
    assert ship_choice({"kind": "equivalent"}, none, same)["model"] == "student"
    for kind in ("kd_worse", "inconclusive"):
        assert ship_choice({"kind": kind}, none, same)["model"] == "baseline"
    assert ship_choice({"kind": "kd_better"}, none, {"student": 200, "baseline": 100})["model"] == "baseline"
    diverged = ship_choice({"kind": "kd_better"}, {"student": [7], "baseline": []}, same)
    assert diverged["model"] == "baseline" and "diverged" in diverged["reason"]


# ---------------------------------------------------------------- error rates by simulation


def simulate(design: Design, delta: float, sd: float, sequences: int, seed: int) -> np.ndarray:
    """The decision each simulated sequence of per-seed differences ends with, looking after
    every round exactly as ``kdtune.retrain --seeds auto`` does (the same ``classify``)."""
    rng = np.random.default_rng(seed)
    d = delta + sd * rng.standard_normal((sequences, design.looks[-1]))
    final = np.full(sequences, INCONCLUSIVE)
    open_ = np.ones(sequences, dtype=bool)
    for n, c, e in zip(design.looks, design.superiority(), design.equivalence(), strict=True):
        x = d[:, :n]
        kind = classify(x.mean(axis=1), x.std(axis=1, ddof=1), n, c, e, design.margin)
        now = open_ & (kind != INCONCLUSIVE)
        final[now] = kind[now]
        open_ &= ~now
    return final


SEQUENCES = 20_000
# the estimate of a rate that is exactly 0.05 has SD sqrt(0.05 * 0.95 / 20000) = 0.0015; the
# checks allow 2 SD over 0.05 on top of the point estimate's own check against 0.05 + 0.003
TOLERANCE = 0.003


@pytest.mark.parametrize("spending", ["obrien-fleming", "pocock"])
@pytest.mark.parametrize("sd", [0.002, 0.005, 0.01, 0.02])
def test_sequential_error_rates_hold(spending: str, sd: float) -> None:
    design = Design(schedule(10), margin=0.005, spending=spending)
    # under the null (no difference): declaring KD better or worse is a type I error
    null = simulate(design, 0.0, sd, SEQUENCES, seed=11)
    type_one = float(np.mean((null == BETTER) | (null == WORSE)))
    assert type_one <= 0.05 + TOLERANCE, type_one
    # at the margin (a true difference of exactly 0.5 points): declaring equivalence is an error
    for delta in (0.005, -0.005):
        at_margin = simulate(design, delta, sd, SEQUENCES, seed=12)
        assert float(np.mean(at_margin == EQUIVALENT)) <= 0.05 + TOLERANCE


def test_uncorrected_looks_inflate_the_error_and_the_design_has_power():
    """Looking after every round at the fixed-sample level more than doubles the type I error:
    the correction is what keeps it at 0.05; and a real effect is still found."""
    from scipy.stats import t

    design = Design(schedule(10))

    class Naive(Design):
        def superiority(self):
            return tuple(float(t.ppf(0.975, n - 1)) for n in self.looks)

    naive = simulate(Naive(schedule(10)), 0.0, 0.01, SEQUENCES, seed=13)
    assert float(np.mean((naive == BETTER) | (naive == WORSE))) > 0.09
    corrected = simulate(design, 0.0, 0.01, SEQUENCES, seed=13)
    assert float(np.mean((corrected == BETTER) | (corrected == WORSE))) <= 0.05 + TOLERANCE
    # a 1-point gain with a 0.5-point seed SD: decided as KD better almost always, early on average
    gain = simulate(design, 0.01, 0.005, SEQUENCES, seed=14)
    assert float(np.mean(gain == BETTER)) > 0.95
    # no difference with a small seed SD: equivalence is found
    same = simulate(design, 0.0, 0.003, SEQUENCES, seed=15)
    assert float(np.mean(same == EQUIVALENT)) > 0.8


def _run(model: str, seed: int, test_f1: float, diverged: bool = False):
    from kdtune.retrain.runs import Run

    metrics = {"macro_f1": test_f1, "accuracy": test_f1, "per_class": {"a": {"f1": test_f1}}}
    return Run(model, seed, 1, 1.0, diverged, 0.0, [], metrics, metrics, np.zeros(2, int),
               np.zeros((2, 2)))


def test_kd_vs_self_training_is_read_at_the_primary_questions_look():
    """The second comparison reuses decide on the same seeds, at the look where KD vs CE
    stopped (here the first of a sequential design), with that look's boundaries."""
    from kdtune.retrain.choose import Choice, Pick
    from kdtune.retrain.retraining import summarise, versus_self_training
    from kdtune.retrain.rounds import Outcome

    design = Design(schedule(10))  # looks at 3, 5, 7, 9, 10 seeds
    seeds = [11, 12, 13, 14, 15]
    student = [0.90, 0.91, 0.92, 0.90, 0.91]
    pairs = list(zip(seeds, student, BETTER_DIFFS, strict=True))
    outcome = Outcome({"student": [_run("student", s, f) for s, f, _ in pairs],
                       "baseline": [_run("baseline", s, f - 0.05) for s, f, _ in pairs],
                       "self_training": [_run("self_training", s, f - d, diverged=s == 15)
                                         for s, f, d in pairs]})
    outcome.looks = [{"kind": "kd_better"}, {"kind": "kd_better"}]  # stopped at the 2nd look
    choice = Choice(Pick("k1", "x", {"alpha": 0.5}), Pick("c1", "x", {"alpha": 1.0}),
                    Pick("s1", "x", {"alpha": 1.0, "unlabeled_targets": "hard"}))
    out = versus_self_training(outcome, design, choice)
    # seed 15 diverged for self-training: 4 paired differences 0.008, 0.010, 0.009, 0.008
    assert out["n"] == 4 and out["look"] == 2 and out["failures"] == [15]
    assert out["mean_difference"] == pytest.approx(0.00875)
    assert out["superiority_t"] == design.superiority()[1]
    # sd 9.574e-4, t = 0.00875 / (9.574e-4 / 2) = 18.3: far past the second look's boundary
    want = decide([0.008, 0.010, 0.009, 0.008], design, look=1, other="self-training")
    assert out["kind"] == want["kind"] == "kd_better"
    assert out["ci_low"] == pytest.approx(want["ci_low"])
    assert out["text"].startswith("KD beats self-training by +0.8")
    assert "left out of this comparison" in out["text"]
    _, summary = summarise(outcome.runs, ["a"])
    # the self-training mean over its 4 paired seeds: (0.892 + 0.900 + 0.911 + 0.892) / 4
    assert summary["self_training"]["test_macro_f1"]["mean"] == pytest.approx(0.89875)
    assert summary["difference_self_training"]["test_macro_f1"]["mean"] == pytest.approx(0.00875)
    assert summary["difference"]["test_macro_f1"]["mean"] == pytest.approx(0.05)  # vs CE: 5 seeds
    ce_student = Choice(choice.baseline, choice.baseline, choice.self_training)
    assert versus_self_training(outcome, design, ce_student)["kind"] is None
    assert versus_self_training(outcome, design, Choice(choice.student, choice.baseline)) == {}


def test_decide_names_what_kd_is_compared_with():
    out = decide(BETTER_DIFFS, FIXED5, other="self-training")
    assert out["text"].startswith("KD beats self-training by +0.90 points of test macro-F1")
    out = decide([0.001, -0.001, 0.002, 0.0, -0.002], FIXED5, other="self-training")
    assert out["text"].startswith("KD and self-training are equivalent within ±0.50 points")
