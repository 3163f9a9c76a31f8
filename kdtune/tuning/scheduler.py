"""ASHA on training progress (epochs, fractions allowed) that can spare protected anchors."""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from kdtune.config import is_anchor
from kdtune.record import schema as S

#: Progress values are sums of 1/n steps; a rung at exactly that point must count as reached.
_EPS = 1e-6


class RungASHA(ASHAScheduler):
    """ASHA with ``progress`` (epochs of training, reported at every evaluation) as its time.

    Every trial has the same number of epochs, so at a given progress all trials are at the
    same point of their OneCycle schedule: rungs compare like with like. STOP decisions never
    apply to ``protected`` anchors (with ``search.baseline: fixed`` the report compares against
    their full-length runs); they still fill the rungs.
    """

    def __init__(self, protected: list[dict[str, Any]], **kwargs: Any):
        super().__init__(time_attr=S.PROGRESS, **kwargs)
        self.protected = protected

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
