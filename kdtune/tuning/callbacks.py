"""The Ray Tune callback that keeps the experiment record as trials end."""

from __future__ import annotations

import math
from typing import Any

from ray.tune import Callback
from ray.tune.result import AUTO_RESULT_KEYS

from kdtune import faults
from kdtune.record import schema as S
from kdtune.record.record import Record
from kdtune.record.trials import sampled


class RecordCallback(Callback):
    """One finished-trial object per trial that ends (a whole-object write: safe on S3, and it
    survives a kill of the driver), then the Optuna study copied beside URI results.

    The object is written as the trial's last result arrives (ASHA stops it on that result, it
    diverged, or it reached its last epoch), before Ray tells the searcher: Ray's controller
    tells the study first and the callbacks after, so a kill between the two once left a study
    holding an ASHA stop that no record held, and the resumed trial trained on past it. With
    the record first, the record is never behind the study.

    The report reads these objects for partial searches. A resume hands each trial's reported
    ``result`` back to a trial that Ray's last snapshot still held unfinished (it ended in the
    seconds between that snapshot and a kill), so it is reported again, not trained again.
    """

    def __init__(self, record: Record, kind: str = "search", epochs: float = math.inf):
        self.record, self.kind, self.epochs = record, kind, float(epochs)
        self.written: set[str] = set()  # trials whose end this run has recorded

    def ends(self, result: dict[str, Any]) -> bool:
        """Whether ``result`` is a trial's last: Ray stops the trial on it (``done``, set before
        the callbacks hear it), the trial diverged, or it finished its last epoch (every trial
        of a search trains ``train.epochs``: epochs are not searchable)."""
        if result.get("done") or result.get("diverged"):
            return True
        return float(result.get(S.PROGRESS) or 0.0) >= self.epochs - 1e-9

    def _end(self, trial: Any, result: dict[str, Any]) -> None:
        faults.before_record()  # tests only: the moment between a trial's end and its record
        self._write(trial, result, "terminated")
        self.written.add(trial.trial_id)
        faults.after_record(self.kind)  # tests only: the record ahead of Ray's saved state

    def _write(self, trial: Any, result: dict[str, Any], ray_status: str) -> None:
        config = dict(trial.config or {})
        self.record.mark_finished({
            S.TRIAL_ID: trial.trial_id, "kind": self.kind, "ray_status": ray_status,
            S.ARM: config.get(S.ARM, "kd"), "hparams": sampled(config),
            S.PROGRESS: result.get(S.PROGRESS), "diverged": bool(result.get("diverged")),
            **{q: result.get(q) for q in S.QUALITY}, "result": reported(result)})

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # the study now holds this trial: copy it beside URI results, so a resume on another
        # machine finds every trial its restored searcher knows
        self.record.sync_optuna()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        if result.get(S.FULL_VAL):  # epoch ends: what the study learnt so far, at small cost
            self.record.sync_optuna()
            faults.after_checkpoint(self.kind)  # tests only: a kill with a trial mid-way
        if self.ends(result):
            self._end(trial, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id not in self.written:  # it ended without a last result here (e.g.
            self._end(trial, trial.last_result or {})  # restored at its last checkpoint)
        self.record.sync_optuna()  # Ray has told the study now

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trial, trial.last_result or {}, "error")
        self.record.sync_optuna()


def reported(result: dict[str, Any]) -> dict[str, Any]:
    """What the trainable itself reported in ``result`` (Ray's own bookkeeping keys dropped):
    reporting it again gives Ray the same last result."""
    drop = {*AUTO_RESULT_KEYS, "trial_id", "experiment_tag", "done", "should_checkpoint"}
    return {k: v for k, v in result.items()
            if k not in drop and (v is None or isinstance(v, (int, float, str, bool)))}
