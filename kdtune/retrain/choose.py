"""Reading the finished search and picking the configuration to re-train.

The best trial comes from ``best_trial.json``; ``--trial ID`` from ``trials.csv``, whose searched
values are merged over the experiment's fixed ones. Bad input raises :class:`ConfigError`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kdtune.config import ConfigError, ExperimentConfig, load_config, validate_hparams
from kdtune.status import OK_STATUSES


@dataclass
class Choice:
    """The configuration to re-train and what the search recorded about its trial."""

    trial_id: str
    source: str  # "best_trial.json" or "trials.csv"
    config: dict[str, Any]  # fixed + searched values, as the search trainable received them
    anchor: str
    status: str
    best_epoch: int | None
    trial_val_macro_f1: float | None
    baseline_learning_rate: float
    baseline_lr_source: str


def to_py(value: Any) -> Any:
    """A JSON-friendly Python value: numpy scalars unwrapped, NaN as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def load_experiment(exp_dir: Path) -> ExperimentConfig:
    """The experiment's resolved config; a :class:`ConfigError` if ``exp_dir`` is not one."""
    if not exp_dir.is_dir():
        raise ConfigError("experiment", f"folder not found: {str(exp_dir)!r}; give "
                          "results/<experiment> of a finished kdtune.search")
    if not (exp_dir / "config.yaml").is_file():
        raise ConfigError("experiment", f"{str(exp_dir)!r} is not a kdtune experiment (no "
                          "config.yaml); give results/<experiment>")
    return load_config(exp_dir / "config.yaml")


def read_trials(exp_dir: Path) -> pd.DataFrame | None:
    """``trials.csv`` (ids and anchors as strings), or None if the search wrote none."""
    path = exp_dir / "trials.csv"
    if not path.is_file():
        return None
    try:
        trials = pd.read_csv(path, dtype={"trial_id": str, "anchor": str, "status": str})
    except pd.errors.EmptyDataError:
        return None
    except (ValueError, pd.errors.ParserError) as exc:
        raise ConfigError("trials.csv", f"could not read {str(path)!r} ({exc})") from None
    if "trial_id" not in trials or "status" not in trials:
        raise ConfigError("trials.csv", f"{str(path)!r} lacks the trial_id / status columns")
    if "anchor" in trials:
        trials["anchor"] = trials["anchor"].fillna("")
    return trials


def _completed(trials: pd.DataFrame | None) -> pd.DataFrame | None:
    """The trials with a usable best epoch (completed or stopped early)."""
    if trials is None:
        return None
    return trials[trials["status"].isin(OK_STATUSES)]


def _ids(frame: pd.DataFrame, limit: int = 8) -> str:
    """The frame's trial ids for an error message, the first ``limit`` of them."""
    ids = list(frame["trial_id"])
    return ", ".join(ids[:limit]) + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")


def _row_config(row: pd.Series, cfg: ExperimentConfig) -> dict[str, Any]:
    """A ``trials.csv`` row's searched values merged over the fixed ones."""
    missing = [p.name for p in cfg.space if p.name not in row.index]
    if missing:
        raise ConfigError("trials.csv", f"no column for the searched {', '.join(missing)}; "
                          "the file does not match config.yaml")
    values = {p.name: to_py(row[p.name]) for p in cfg.space}
    if isinstance(values.get("layers"), str):  # a list in the CSV: "[0, 5]"
        values["layers"] = [int(i) for i in json.loads(values["layers"])]
    return {**cfg.fixed, **values}


def choose_config(exp_dir: Path, cfg: ExperimentConfig, trial_id: str | None) -> Choice:
    """The best trial (``best_trial.json``) or ``trial_id`` (``trials.csv``), merged over fixed."""
    trials = read_trials(exp_dir)
    ok = _completed(trials)
    no_trial = (f"{str(exp_dir)!r} has no completed trial ({{}}); let the search finish "
                f"(python -m kdtune.search --resume {exp_dir}) before re-training")
    row: pd.Series | None = None
    if trial_id is None:
        best_file = exp_dir / "best_trial.json"
        if not best_file.is_file():
            raise ConfigError("experiment", no_trial.format("no best_trial.json"))
        if ok is not None and not len(ok):
            raise ConfigError("experiment", no_trial.format(
                "trials.csv has no completed or stopped-early trial"))
        try:
            best = json.loads(best_file.read_text(encoding="utf-8"))
            tid, config = str(best["trial_id"]), dict(best["config"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError("best_trial.json", f"unreadable ({type(exc).__name__}: {exc}); "
                              "re-run the search's results stage or pass --trial") from None
        if trials is not None and (trials["trial_id"] == tid).any():
            row = trials[trials["trial_id"] == tid].iloc[0]
        source = "best_trial.json"
        anchor, status = str(best.get("anchor") or ""), str(best.get("status") or "")
        best_epoch = best.get("best_epoch")
        val_f1 = best.get("score") if best.get("metric") == "val_macro_f1" else None
    else:
        if ok is None or not len(ok):
            raise ConfigError("experiment", no_trial.format(
                "no trials.csv" if trials is None else
                "trials.csv has no completed or stopped-early trial"))
        match = trials[trials["trial_id"] == trial_id]
        if not len(match):
            raise ConfigError("--trial", f"unknown trial {trial_id!r}; completed trials are "
                              f"{_ids(ok)}")
        row = match.iloc[0]
        if row["status"] not in OK_STATUSES:
            raise ConfigError("--trial", f"trial {trial_id!r} {row['status']}; it has no usable "
                              f"result, pick one of {_ids(ok)}")
        tid, config, source = trial_id, _row_config(row, cfg), "trials.csv"
        anchor, status = str(row.get("anchor", "") or ""), str(row["status"])
        best_epoch, val_f1 = None, None
    if row is not None:  # trials.csv is the record of every trial's best epoch
        best_epoch = to_py(row.get("best_epoch", best_epoch))
        val_f1 = to_py(row.get("best_val_macro_f1", val_f1))
    config = {k: to_py(v) for k, v in config.items()}
    config["batch_size"] = int(config["batch_size"])
    config["epochs"] = int(config["epochs"])
    validate_hparams(config, "trial")
    base_lr, base_src = float(config["learning_rate"]), "the chosen configuration's"
    if trials is not None and "anchor" in trials and "learning_rate" in trials:
        anchors = trials[trials["anchor"] == "baseline"]
        if len(anchors):
            base_lr = float(anchors.iloc[0]["learning_rate"])
            base_src = f"baseline anchor trial {anchors.iloc[0]['trial_id']}'s"
    return Choice(tid, source, config, anchor, status,
                  int(best_epoch) if best_epoch is not None else None,
                  float(val_f1) if val_f1 is not None else None, base_lr, base_src)
