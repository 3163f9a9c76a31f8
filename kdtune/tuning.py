"""Ray Tune pieces: the parameter space, TPE that knows about ASHA, ASHA that spares anchors.

* :class:`AnchoredASHA` is ASHA that never stops the anchor trials (the CE-only baseline and
  the seed's default), so the comparison the report draws always has full-length references.
* :class:`PruneAwareOptunaSearch` tells the Optuna study that a trial ASHA stopped early was
  *pruned*, not complete (Ray's OptunaSearch marks it complete), so TPE does not treat a
  one-epoch score as a final one; a completed trial is told its best epoch's score. It needs
  no shared state: a trial that ends, without error and without diverging, before the last
  epoch can only have been stopped by the scheduler.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from optuna.trial import TrialState
from ray import tune
from ray.tune import Callback
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

from kdtune.config import ExperimentConfig, ParamSpace, is_anchor

log = logging.getLogger(__name__)


def tune_distribution(p: ParamSpace):
    """A Ray Tune sampler for one parameter (randint's ``high`` is inclusive here)."""
    if p.type == "uniform":
        return tune.uniform(p.low, p.high)
    if p.type == "loguniform":
        return tune.loguniform(p.low, p.high)
    if p.type == "quniform":
        return tune.quniform(p.low, p.high, p.q)
    if p.type == "randint":
        return tune.randint(int(p.low), int(p.high) + 1)
    return tune.choice(list(p.values))


def param_space(cfg: ExperimentConfig) -> dict[str, Any]:
    return {p.name: tune_distribution(p) for p in cfg.space}


class AnchoredASHA(ASHAScheduler):
    """ASHA whose STOP decisions never apply to the anchor trials (they still fill the rungs)."""

    def __init__(self, anchors: list[dict[str, Any]], **kwargs: Any):
        super().__init__(**kwargs)
        self.anchors = anchors

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and is_anchor(trial.config, self.anchors):
            if result.get(self._time_attr, 0) < self._max_t:
                return TrialScheduler.CONTINUE
        return decision


class PruneAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that records ASHA-stopped and diverged trials as PRUNED in the study."""

    def __init__(self, *args: Any, max_epochs: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_epochs = max_epochs
        self._best: dict[str, float] = {}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        super().on_trial_result(trial_id, result)
        value = None if isinstance(self.metric, list) else result.get(self.metric)
        if value is not None and not result.get("diverged"):
            sign = 1 if self.mode == "max" else -1
            old = self._best.get(trial_id)
            if old is None or sign * value > sign * old:
                self._best[trial_id] = value

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        # The study learns each trial's best epoch, the value kdtune ranks and exports by
        # (Ray's OptunaSearch would tell the last epoch's).
        if error and trial_id in self._ot_trials and trial_id not in self._completed_trials:
            self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.FAIL)
            self._completed_trials.add(trial_id)
            return
        if result is not None and trial_id in self._best:
            result = {**result, self.metric: self._best[trial_id]}
        stopped_early = (result is not None and not error
                         and result.get("training_iteration", 0) < self.max_epochs)
        if (stopped_early or (result or {}).get("diverged")) and \
                trial_id in self._ot_trials and trial_id not in self._completed_trials:
            self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
            self._completed_trials.add(trial_id)
            return
        super().on_trial_complete(trial_id, result=result, error=error)


class FinishedTrialsLog(Callback):
    """Appends one JSON line per finished trial to ``trials_done.jsonl`` (fsync'd).

    A durable record that survives a kill of the driver: the report reads it for partial
    experiments and the resume test uses it to check that no finished trial is rerun.
    """

    def __init__(self, path: str):
        self.path = path

    def _write(self, trial, status: str) -> None:
        result = trial.last_result or {}
        line = {"trial_id": trial.trial_id, "status": status, "config": trial.config,
                "epochs": result.get("training_iteration"),
                "val_macro_f1": result.get("val_macro_f1"),
                "val_accuracy": result.get("val_accuracy")}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._write(trial, "terminated")

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._write(trial, "error")
