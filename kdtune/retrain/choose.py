"""Which configurations to re-train: the recommended KD student and the tuned CE baseline, and
the self-training pick when the search had that arm.

Both come from the record's ``picks.json`` (each at its own hyperparameters: the baseline is
the best trial of the tuned CE-only arm, or the CE anchor with ``search.baseline: fixed``);
``--trial`` / ``--baseline-trial`` pick other trials of ``trials.csv``. A search without any CE
trial (``search.baseline: none``) is compared with CE at the student's own hyperparameters,
and says so. Bad input raises :class:`~kdtune.errors.ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from kdtune.config import ExperimentConfig
from kdtune.errors import ConfigError
from kdtune.params import CE_ALPHA, Trial, validate_hparams
from kdtune.record import record as R
from kdtune.record import schema as S
from kdtune.record.picks import BASELINE, DISTILLED, SELF_TRAINING
from kdtune.record.record import Record
from kdtune.record.trials import trial_hparams


@dataclass
class Pick:
    """One configuration to re-train and what the search recorded about its trial."""

    trial_id: str | None  # None: derived, not a trial of the search
    source: str  # "picks.json", "trials.csv" or how it was derived
    hparams: dict[str, Any]  # the full hparams the trial trained with
    arm: str = ""
    anchor: str = ""
    status: str = ""
    best_progress: float | None = None
    val_score: float | None = None

    @property
    def is_ce(self) -> bool:
        return Trial(self.hparams).ce_only


@dataclass
class Choice:
    student: Pick
    baseline: Pick
    self_training: Pick | None = None  # picks.json's self-training pick, compared second


def _ids(frame: pd.DataFrame, limit: int = 8) -> str:
    ids = list(frame[S.TRIAL_ID])
    return ", ".join(ids[:limit]) + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")


def _from_row(row: pd.Series, cfg: ExperimentConfig, source: str) -> Pick:
    score = row.get(S.best(cfg.search.metric))
    return Pick(str(row[S.TRIAL_ID]), source, trial_hparams(row, cfg), str(row.get(S.ARM, "")),
                str(row.get(S.ANCHOR, "") or ""), str(row[S.STATUS]),
                _float(row.get(S.BEST_PROGRESS)), _float(score))


def _float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def _trial(trials: pd.DataFrame | None, trial_id: str, cfg: ExperimentConfig, flag: str) -> Pick:
    ok = trials[trials[S.STATUS].isin(S.OK_STATUSES)] if trials is not None else None
    if ok is None or not len(ok):
        raise ConfigError("experiment", "no completed trial in trials.csv; let the search finish "
                          "(python -m kdtune.search --resume <experiment>) before re-training")
    match = trials[trials[S.TRIAL_ID] == trial_id]
    if not len(match):
        raise ConfigError(flag, f"unknown trial {trial_id!r}; completed trials are {_ids(ok)}")
    if match.iloc[0][S.STATUS] not in S.OK_STATUSES:
        raise ConfigError(flag, f"trial {trial_id!r} {match.iloc[0][S.STATUS]}; it has no usable "
                          f"result, pick one of {_ids(ok)}")
    return _from_row(match.iloc[0], cfg, "trials.csv")


def _picked(picks: dict[str, Any], which: str) -> Pick | None:
    entry = picks.get(which)
    if not entry:
        return None
    hp = Trial.of(entry["hparams"]).values
    return Pick(entry[S.TRIAL_ID], f"picks.json ({picks.get('method')})", hp, entry.get(S.ARM, ""),
                entry.get(S.ANCHOR, ""), entry.get(S.STATUS, ""), _float(entry.get(S.BEST_PROGRESS)),
                _float(entry.get("score")))


def choose(record: Record, cfg: ExperimentConfig, trial: str | None = None,
           baseline_trial: str | None = None) -> Choice:
    """The student and baseline to re-train (picks.json, or the trials named on the command line)."""
    trials = record.read_csv(R.TRIALS)
    picks = record.read_json(R.PICKS)
    if picks is None and (trial is None or baseline_trial is None):
        raise ConfigError("experiment", f"{record.root!r} has no picks.json: the search has not "
                          "finished; resume it (python -m kdtune.search --resume ...) before "
                          "re-training")
    student = _trial(trials, trial, cfg, "--trial") if trial else _picked(picks, DISTILLED)
    if student is None:
        raise ConfigError("experiment", "the search recommends no distilled (alpha < 1) "
                          "configuration; pass --trial ID")
    baseline = (_trial(trials, baseline_trial, cfg, "--baseline-trial") if baseline_trial
                else _picked(picks, BASELINE))
    if baseline is None:  # no CE arm and no CE anchor: CE at the student's own hparams
        baseline = Pick(None, "derived: CE-only at the student's hyperparameters (the search had no "
                        "CE-only trial)", {**student.hparams, "alpha": CE_ALPHA, "beta": 0.0})
    self_training = _picked(picks, SELF_TRAINING) if picks else None
    for name, pick in (("student", student), ("baseline", baseline), ("self_training", self_training)):
        if pick is not None:
            validate_hparams(pick.hparams, name)
    return Choice(student, baseline, self_training)
