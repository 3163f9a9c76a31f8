"""ASHA on training progress (epochs, fractions allowed) that can spare protected anchors.

Promotion follows the ASHA paper's count (Li et al., "A System for Massively Parallel
Hyperparameter Tuning", MLSys 2020, Algorithm 2): of the ``n`` trials that have reached a rung,
the top ``floor(n / rf)`` go on. ASHA proper pauses a trial until that count admits it; Ray Tune
and kdtune decide at once (a trial goes on or stops when it reaches the rung), so, as Optuna's
``SuccessiveHalvingPruner`` does for the same reason, a trial that arrives while
``floor(n / rf)`` is still 0 goes on only when it is the best so far, and here only
provisionally: until ``rf`` trials have reached that rung it is judged again at each of its
later results, so a first arrival that later ones beat stops then instead of running to the
end. Ray's own rule (``search.promotion: percentile``) instead keeps a trial above the
``1 - 1/rf`` interpolated percentile of the scores recorded before it, once, which lets more of
the first arrivals through.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.schedulers.async_hyperband import _Bracket

from kdtune.config import is_anchor
from kdtune.config.sections import PROMOTIONS
from kdtune.record import schema as S

#: Progress values are sums of 1/n steps; a rung at exactly that point must count as reached.
_EPS = 1e-6


def keeps(previous: list[float], score: float, rf: int) -> bool:
    """Whether a trial reaching a rung with ``score`` goes on, given the scores (higher is
    better) recorded there before it: it must be among the top ``max(1, floor(n / rf))`` of
    the ``n`` scores including its own (ties go its way)."""
    scores = [v for v in previous if v == v]  # NaN scores rank nowhere
    keep = max(1, (len(scores) + 1) // rf)
    return sum(v > score for v in scores) < keep


class _TopKBracket(_Bracket):
    """Ray's one-bracket bookkeeping (rungs, recorded scores) with :func:`keeps` as the rule.

    A trial that reaches a rung held by fewer than ``rf`` scores (itself included) goes on
    provisionally: the count cannot judge it yet. At each later result it is judged again by
    the same count against the scores recorded there by then, until the rung holds ``rf`` of
    them, so the first arrivals face the rule that the later ones do. (ASHA proper would pause
    it; with no later arrival it simply goes on.)
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._provisional: dict[str, float] = {}  # trial id -> the rung it passed provisionally

    def on_result(self, trial: Any, cur_iter: float, cur_rew: float | None) -> str:
        tid = trial.trial_id
        if tid in self._provisional and not self._still_kept(tid):
            return TrialScheduler.STOP
        for milestone, recorded in self._rungs:  # highest rung first, as in Ray
            if cur_iter < milestone or tid in recorded:
                continue
            if cur_rew is None:  # Ray: warn and go on without recording
                return super().on_result(trial, cur_iter, cur_rew)
            go_on = keeps([v for v in recorded.values() if v is not None], cur_rew, int(self.rf))
            recorded[tid] = cur_rew
            self._provisional.pop(tid, None)
            if go_on and len(recorded) < self.rf:
                self._provisional[tid] = milestone
            return TrialScheduler.CONTINUE if go_on else TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def _still_kept(self, tid: str) -> bool:
        recorded = dict(self._rungs)[self._provisional[tid]]
        others = [v for k, v in recorded.items() if k != tid and v is not None]
        kept = keeps(others, recorded[tid], int(self.rf))
        if not kept or len(recorded) >= self.rf:
            del self._provisional[tid]
        return kept


class RungASHA(ASHAScheduler):
    """ASHA with ``progress`` (epochs of training, reported at every evaluation) as its time.

    Every trial has the same number of epochs, so at a given progress all trials are at the
    same point of their OneCycle schedule: rungs compare like with like. ``promotion`` is
    ``top_k`` (the module's rule) or ``percentile`` (Ray's). STOP decisions never apply to
    ``protected`` anchors (with ``search.baseline: fixed`` the report compares against their
    full-length runs); they still fill the rungs.
    """

    def __init__(self, protected: list[dict[str, Any]], *, max_t: float, grace_period: float,
                 reduction_factor: int, promotion: str = "top_k", **kwargs: Any):
        if promotion not in PROMOTIONS:
            raise ValueError(f"promotion must be one of {PROMOTIONS}, got {promotion!r}")
        super().__init__(time_attr=S.PROGRESS, max_t=max_t, grace_period=grace_period,
                         reduction_factor=reduction_factor, **kwargs)
        self.protected = protected
        if promotion == "top_k":  # the same bracket(s), the rule swapped
            self._brackets = [_TopKBracket(grace_period, max_t, reduction_factor, s,
                                           stop_last_trials=self._stop_last_trials)
                              for s in range(len(self._brackets))]

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if S.PROGRESS in result:
            result = {**result, S.PROGRESS: result[S.PROGRESS] + _EPS}
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and is_anchor(trial.config, self.protected):
            if result.get(S.PROGRESS, 0) < self._max_t:
                return TrialScheduler.CONTINUE
        return decision

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if result and S.PROGRESS in result:
            result = {**result, S.PROGRESS: result[S.PROGRESS] + _EPS}
        super().on_trial_complete(tune_controller, trial, result)
