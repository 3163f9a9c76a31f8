"""Study trials a kill left RUNNING, told what happened once the search has ended.

After a kill, a resumed search can run and record trials whose study trials its restored
searcher does not know, so their studies are never told: trials in Ray's restored trial list
that the searcher's snapshot missed (the two files of a snapshot are written and uploaded
apart; the searcher adopts such trials, kdtune.tuning.ArmRouter.adopt; a CI run had two), and,
for a URI search, trials that ended just before the kill whose tell the uploaded study copy
missed. Each study trial carries the id of the Ray trial it was asked for (:data:`TRIAL_ATTR`,
set by the router), so once every trial has ended the search's own trials table tells it the
outcome the searcher would have told: FAIL for an error, PRUNED for an early stop or a
divergence, COMPLETE with the best full-validation score (the last values of several
objectives). A study trial with no trained trial (suggested in the last instant before a kill,
never started) is told FAIL: no study keeps a trial that will never end.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd
from optuna.trial import TrialState

from kdtune.record import schema as S

log = logging.getLogger(__name__)

#: The Optuna user attribute naming the Ray trial (or served duplicate) a study trial is.
TRIAL_ATTR = S.TRIAL_ID


def row_outcome(row: dict[str, Any], metrics: list[str]) -> tuple[TrialState, list[float] | None]:
    """What the searcher tells a study of the trials.csv ``row`` (kdtune.tuning.ArmSearcher):
    one objective is told the best full-validation value, several their last values."""
    status = row.get(S.STATUS)
    if status == S.ERRORED:
        return TrialState.FAIL, None
    if status != S.COMPLETED:
        return TrialState.PRUNED, None
    if len(metrics) == 1:
        values = [row.get(S.best(metrics[0]))]
    else:
        values = [row.get(S.last(m), row.get(m)) for m in metrics]
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return TrialState.FAIL, None  # a completed trial with no score: nothing true to tell
    return TrialState.COMPLETE, [float(v) for v in values]


def _rows(trials: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """trials.csv rows by trial id, a served duplicate standing for its original's outcome."""
    rows = {str(r[S.TRIAL_ID]): r for r in trials.to_dict("records")} if len(trials) else {}
    for tid, row in list(rows.items()):
        if row.get(S.STATUS) == S.DUPLICATE:
            rows[tid] = rows.get(str(row.get(S.DUPLICATE_OF)), {S.STATUS: S.ERRORED})
    return rows


def settle_studies(url: str, trials: pd.DataFrame, metrics: list[str]) -> dict[str, int]:
    """Tell every RUNNING trial of every study at ``url`` its outcome from ``trials`` (the
    search's trials table), or FAIL where no trained trial stands behind it; returns how many
    of each state were told."""
    import optuna

    rows, told = _rows(trials), {}
    for summary in optuna.get_all_study_summaries(url):
        study = optuna.load_study(study_name=summary.study_name, storage=url)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            tid = trial.user_attrs.get(TRIAL_ATTR)
            state, values = row_outcome(rows[tid], metrics) if tid in rows else (TrialState.FAIL,
                                                                                  None)
            study.tell(trial.number, values=values, state=state)
            told[state.name] = told.get(state.name, 0) + 1
            if tid in rows:
                log.warning("study %s: trial %d (%s) ended before the last kill and its study "
                            "copy missed it; told %s from the record", summary.study_name,
                            trial.number, tid, state.name)
            else:
                log.warning("study %s: trial %d was suggested before a kill and never trained; "
                            "told FAIL", summary.study_name, trial.number)
    return told
