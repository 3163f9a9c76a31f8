"""Trials of a partial (interrupted or running) search, rebuilt from Ray Tune's own files.

Each trial folder under ``tune*/`` holds ``params.json`` (its config), ``result.json`` (one JSON
line per reported evaluation) and, after a failure, ``error.txt``. The record's finished-trial
objects say which trials ended (they survive a kill of the driver); a trial that has not ended
is shown as running or interrupted, never as stopped early.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd

from kdtune.config import ExperimentConfig
from kdtune.record import schema as S
from kdtune.record.record import Record
from kdtune.record.trials import TrialResult, trial_tables

_TRIAL_ID = re.compile(r"_([0-9a-f]{5,})_\d+_")


def _json_lines(text: str) -> list[dict[str, Any]]:
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # the line Ray is writing right now
            continue
    return rows


def _trial(record: Record, folder: str, finished: dict[str, Any]) -> TrialResult | None:
    store = record.store
    names = set(store.listdir(folder))
    lines = _json_lines(store.read_text(f"{folder}/result.json")) if "result.json" in names else []
    config = None
    if "params.json" in names:
        config = json.loads(store.read_text(f"{folder}/params.json"))
    elif lines:
        config = lines[-1].get("config")
    if config is None:
        return None  # not a trial folder
    rows = [{k: v for k, v in r.items() if k != "config"} for r in lines]
    match = _TRIAL_ID.search(folder.rsplit("/", 1)[-1])
    tid = str((rows[-1].get(S.TRIAL_ID) if rows else None) or (match.group(1) if match else folder))
    error = store.read_text(f"{folder}/error.txt") if "error.txt" in names else None
    if error is None and (finished.get(tid) or {}).get("ray_status") == "error":
        error = "the trial failed (see Ray's logs)"
    return TrialResult(tid, store.uri(folder), config, pd.DataFrame(rows), error)


def trials_from_tune(record: Record, cfg: ExperimentConfig, state: str
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, history) of a partial search."""
    finished = record.finished()
    results = []
    for run in record.tune_runs():
        for name in record.store.listdir(run):
            if record.store.is_file(f"{run}/{name}"):
                continue
            tr = _trial(record, f"{run}/{name}", finished)
            if tr is not None:
                results.append(tr)
    duplicates = [e for e in finished.values() if e.get(S.STATUS) == S.DUPLICATE]
    if not results and not duplicates:
        return pd.DataFrame(), pd.DataFrame()
    trials, history = trial_tables(results, cfg, duplicates)
    unfinished = S.RUNNING if state == S.RUNNING else S.INTERRUPTED
    ended = {t for t, e in finished.items() if e.get("ray_status") == "terminated"}
    stopped = (trials[S.STATUS] == S.STOPPED) & ~trials[S.TRIAL_ID].isin(ended)
    trials.loc[stopped, S.STATUS] = unfinished  # ASHA did not stop it: it is (or was) running
    return trials, history
