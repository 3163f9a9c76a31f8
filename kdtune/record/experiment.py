"""``load_experiment``: the one way report, retrain and export read an experiment.

A finished search has ``trials.csv`` and ``history.csv``; an interrupted or running one does
not, and its trials are rebuilt from Ray Tune's per-trial ``result.json`` files
(:mod:`kdtune.record.partial`). Bad input raises :class:`~kdtune.errors.ConfigError`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kdtune.config import ExperimentConfig
from kdtune.errors import ConfigError
from kdtune.record import record as R
from kdtune.record import schema as S
from kdtune.record.record import Record
from kdtune.record.trials import rank

RUNNING_WINDOW_S = 60.0  # tune/ touched this recently: the search is still running
STATE_FINISHED, STATE_RUNNING, STATE_INTERRUPTED = "finished", "running", "interrupted"


@dataclass
class Experiment:
    """Everything one experiment folder holds, read through its :class:`Record`."""

    record: Record
    cfg: ExperimentConfig
    state: str
    info: dict[str, Any]
    trials: pd.DataFrame  # trials.csv, ranked by each trial's best score
    history: pd.DataFrame  # one row per trial evaluation
    evaluation: dict[str, Any] | None = None
    picks: dict[str, Any] | None = None
    confirm: pd.DataFrame | None = None
    pareto: pd.DataFrame | None = None
    retrain: dict[str, Any] | None = None  # retrain/retrain.json
    retrain_summary: str | None = None  # retrain/summary.md

    @property
    def root(self) -> str:
        return self.record.root

    @property
    def dir(self) -> Path:
        """The local folder: the experiment itself, or the working copy of a URI record."""
        return self.record.work_dir

    @property
    def score(self) -> str:
        return S.best(self.cfg.search.metric)

    @property
    def searched(self) -> list[str]:
        return [p.name for p in self.cfg.space]

    def param_value(self, row: pd.Series, name: str) -> Any:
        """A trial's value of ``name``: its own when searched (and set), else the fixed one."""
        from kdtune.formatting import is_missing

        if name in row and not is_missing(row[name]):
            return row[name]
        if name == "layers":
            return self.cfg.student.layers
        return getattr(self.cfg.train, name, None)


def experiment_state(record: Record, now: float | None = None) -> str:
    """'finished' (summary.md and evaluation.json exist), else 'running' or 'interrupted'."""
    if record.store.is_file(R.SUMMARY) and record.store.is_file(R.EVALUATION):
        return STATE_FINISHED
    now = time.time() if now is None else now
    # What only a live search touches (a report's own files do not count).
    folders = [*record.tune_runs(), R.TUNE_CONFIRM, R.FINISHED]
    times = [_newest(record, d) for d in folders if record.store.exists(d)]
    times += [record.store.mtime(f) for f in (R.MARKER, R.CONFIG, R.RUN_INFO)]
    newest = max([t for t in times if t] or [0.0])
    return STATE_RUNNING if now - newest < RUNNING_WINDOW_S else STATE_INTERRUPTED


def _newest(record: Record, folder: str) -> float | None:
    """Newest modification time of ``folder``, its entries and the files one level below."""
    store = record.store
    times = [store.mtime(folder)]
    for name in store.listdir(folder)[:500]:
        rel = f"{folder}/{name}" if folder else name
        times.append(store.mtime(rel))
        for sub in store.listdir(rel)[:50] if not store.is_file(rel) else []:
            times.append(store.mtime(f"{rel}/{sub}"))
    return max((t for t in times if t is not None), default=None)


def open_record(root: str | Path) -> Record:
    """The record at ``root``, checked to be a kdtune experiment of this schema."""
    try:
        record = Record(root)
    except ConfigError as exc:
        raise ConfigError("experiment", str(exc)) from None
    if not record.store.remote and not Path(root).exists():
        raise ConfigError("experiment", f"folder not found: {str(root)!r}; give "
                          "results/<experiment> of a kdtune search")
    if not record.store.remote and not Path(root).is_dir():
        raise ConfigError("experiment", f"{str(root)!r} is not a folder; give results/<experiment>")
    if not record.exists():
        raise ConfigError("experiment", f"{str(root)!r} is not a kdtune experiment (no "
                          "config.yaml); give results/<experiment>")
    record.check_schema()
    return record


def load_experiment(root: str | Path) -> Experiment:
    """Read an experiment (a folder or a storage URI); one-line ConfigError when it is not one."""
    from kdtune.record.partial import trials_from_tune

    record = open_record(root)
    cfg = record.config()
    state = experiment_state(record)
    trials, history = record.read_csv(R.TRIALS), record.read_csv(R.HISTORY)
    if trials is None:
        trials, history = trials_from_tune(record, cfg, state)
    history = history if history is not None else pd.DataFrame()
    if S.TRIAL_ID in history:
        history[S.TRIAL_ID] = history[S.TRIAL_ID].astype(str)
    retrain = record.read_json(f"{R.RETRAIN}/retrain.json")
    return Experiment(record, cfg, state, record.read_json(R.RUN_INFO) or {}, rank(trials, cfg),
                      history, record.read_json(R.EVALUATION), record.read_json(R.PICKS),
                      record.read_csv(R.CONFIRM), record.read_csv(R.PARETO), retrain,
                      record.read_text(f"{R.RETRAIN}/summary.md"))
