"""ASHA's promotion rule at a rung (kdtune.tuning.scheduler), driven through Ray's scheduler API.

Hand-computed: with reduction factor 3, a trial reaching a rung after ``m`` others goes on under
``top_k`` iff fewer than ``max(1, floor((m + 1) / 3))`` of their scores beat it; under Ray's
``percentile`` iff it is not below the interpolated 66.7th percentile of their scores.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ray.tune.schedulers import TrialScheduler

from kdtune.config import load_config
from kdtune.errors import ConfigError
from kdtune.tuning.scheduler import RungASHA, keeps

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


@pytest.mark.parametrize(("previous", "score", "rf", "expected"), [
    ([], 0.1, 3, True),                       # the first at a rung: keep 1 of 1
    ([0.8], 0.7, 3, False),                   # keep max(1, 2 // 3) = 1; 0.8 beats it
    ([0.8], 0.8, 3, True),                    # a tie goes its way
    ([0.8, 0.7], 0.75, 3, False),             # keep 1 of 3: only the best
    ([0.8, 0.7, 0.75], 0.78, 3, False),       # keep 1 of 4
    ([0.8, 0.7, 0.75, 0.6, 0.65], 0.76, 3, True),    # keep 6 // 3 = 2: 0.8 alone beats it
    ([0.8, 0.77, 0.75, 0.6, 0.65], 0.76, 3, False),  # keep 2 of 6: 0.8 and 0.77 beat it
    ([0.9, 0.8, 0.7, 0.6], 0.85, 2, True),    # rf 2: keep 5 // 2 = 2; only 0.9 beats it
    ([0.5, float("nan")], 0.4, 2, False),     # NaN ranks nowhere: keep 1 of 2, 0.5 beats it
])
def test_keeps_the_top_floor_n_over_rf(previous, score, rf, expected):
    assert keeps(previous, score, rf) is expected


def _asha(promotion: str) -> RungASHA:
    return RungASHA([], metric="val_macro_f1", mode="max", max_t=3.0, grace_period=0.5,
                    reduction_factor=3, promotion=promotion)


def _decisions(sched: RungASHA, scores: list[float], progress: float = 0.5) -> list[str]:
    out = []
    for i, score in enumerate(scores):
        trial = SimpleNamespace(trial_id=f"t{i}", config={"alpha": 0.5, "temperature": 2.0,
                                                          "learning_rate": 1e-4})
        sched.on_trial_add(None, trial)
        out.append(sched.on_trial_result(None, trial, {"progress": progress,
                                                       "val_macro_f1": score}))
    return out


def test_top_k_stops_what_rays_percentile_lets_through():
    """0.80, 0.70, 0.75, 0.78 at the 0.5 rung. top_k: 0.78 is 2nd of 4, keep 1 -> STOP.
    percentile: the 66.7th percentile of (0.70, 0.75, 0.80) is 0.75 + (2/3 * 2 - 1) * 0.05 =
    0.7667 <= 0.78 -> CONTINUE. The first three agree (0.70 < 0.80; 0.75 < 0.70 + 2/3 * 0.1)."""
    assert _decisions(_asha("top_k"), [0.80, 0.70, 0.75, 0.78]) == [CONTINUE, STOP, STOP, STOP]
    assert _decisions(_asha("percentile"), [0.80, 0.70, 0.75, 0.78]) == [CONTINUE, STOP, STOP,
                                                                        CONTINUE]


def _result(sched: RungASHA, tid: str, progress: float, score: float) -> str:
    return sched.on_trial_result(None, SimpleNamespace(trial_id=tid, config={}),
                                 {"progress": progress, "val_macro_f1": score})


def test_a_first_arrival_is_judged_again_until_the_rung_can_count():
    """rf 3. t0 (0.70) and t1 (0.75) reach 0.5 first: each is the best of fewer than 3 there, so
    each goes on provisionally. At t0's next result (1.0) the rung holds t1's 0.75: keep 1 of 2,
    t0 is beaten -> STOP. t1 at 1.0: still the best of 2 -> on. t2 (0.60) arrives 3rd: keep 1
    of 3 -> STOP; the rung now holds 3 scores. t1 at 1.5 is judged once more at 0.5 (best of 3:
    confirmed), then is the first at 1.5 (provisional there) and, with no one else arriving,
    goes on to max_t, where ASHA stops every trial."""
    sched = _asha("top_k")
    assert _decisions(sched, [0.70, 0.75]) == [CONTINUE, CONTINUE]
    assert _result(sched, "t0", 1.0, 0.9) == STOP
    assert _result(sched, "t1", 1.0, 0.8) == CONTINUE
    t2 = SimpleNamespace(trial_id="t2", config={})
    sched.on_trial_add(None, t2)
    assert sched.on_trial_result(None, t2, {"progress": 0.5, "val_macro_f1": 0.60}) == STOP
    assert _result(sched, "t1", 1.5, 0.85) == CONTINUE
    assert _result(sched, "t1", 2.0, 0.86) == CONTINUE
    assert _result(sched, "t1", 3.0, 0.88) == STOP
    # Ray's rule decides once: t0 goes on at 1.0; t2 is below 0.70 + 2/3 * 0.05 = 0.733
    ray = _asha("percentile")
    assert _decisions(ray, [0.70, 0.75]) == [CONTINUE, CONTINUE]
    assert _result(ray, "t0", 1.0, 0.9) == CONTINUE
    ray.on_trial_add(None, t2)
    assert ray.on_trial_result(None, t2, {"progress": 0.5, "val_macro_f1": 0.60}) == STOP


def test_each_rung_counts_its_own_arrivals():
    """Six trials reach 0.5: t0 (0.90) and t1 (0.95) go on, the other four are beaten by both
    (keep 1 of 3, 1 of 4, 1 of 5, 2 of 6). At their next results the rung holds 6 scores and
    both are in its top 2: confirmed. Rung 1.5 counts only what reached it: t1 arrives first
    (0.91), t0 second and lower (0.90): keep 1 of 2 -> STOP, though both led at 0.5."""
    sched = _asha("top_k")
    assert _decisions(sched, [0.90, 0.95, 0.50, 0.60, 0.70, 0.40]) == [CONTINUE] * 2 + [STOP] * 4
    assert _result(sched, "t0", 1.0, 0.88) == CONTINUE
    assert _result(sched, "t1", 1.0, 0.89) == CONTINUE
    assert _result(sched, "t1", 1.5, 0.91) == CONTINUE
    assert _result(sched, "t0", 1.5, 0.90) == STOP
    assert _result(sched, "t1", 2.0, 0.10) == CONTINUE  # past its last rung: on until max_t


def test_a_protected_anchor_is_never_stopped_early():
    anchor = {"alpha": 1.0, "learning_rate": 1e-4}
    sched = RungASHA([anchor], metric="val_macro_f1", mode="max", max_t=3.0, grace_period=0.5,
                     reduction_factor=3)
    first = SimpleNamespace(trial_id="a", config={"alpha": 0.5, "learning_rate": 1e-4})
    protected = SimpleNamespace(trial_id="b", config=dict(anchor))
    for t in (first, protected):
        sched.on_trial_add(None, t)
    assert sched.on_trial_result(None, first, {"progress": 0.5, "val_macro_f1": 0.8}) == CONTINUE
    assert sched.on_trial_result(None, protected, {"progress": 0.5, "val_macro_f1": 0.1}) == CONTINUE


def test_promotion_is_validated():
    with pytest.raises(ConfigError, match="search.promotion"):
        load_config("search_spaces/smoke.yaml", {"search.promotion": "median"})
    assert load_config("search_spaces/alpha_temp.yaml").search.promotion == "top_k"
    with pytest.raises(ValueError, match="promotion"):
        _asha("median")
