"""Loading an experiment folder: its config, state, trials, history and final results files.

A finished search has ``trials.csv`` / ``history.csv``; an interrupted or running one does not,
and its trials are rebuilt from Ray's per-trial ``tune/*/result.json``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from kdtune.config import ConfigError, ExperimentConfig, load_config
from kdtune.report.formatting import is_missing

log = logging.getLogger("kdtune.report")

RUNNING_WINDOW_S = 60.0  # tune/ touched this recently: the search is still running
STATE_FINISHED, STATE_RUNNING, STATE_INTERRUPTED = "finished", "running", "interrupted"

# trial ids are hex ("1234e567", "00012345"): read them as text, never as numbers
_TEXT_COLUMNS = {"trial_id": str, "anchor": str, "status": str, "error": str, "layers": str}


class ReportError(Exception):
    """Bad input (no such folder, not a kdtune experiment); the message is one line."""


@dataclass
class Experiment:
    """Everything the report reads from one experiment folder."""

    dir: Path
    cfg: ExperimentConfig
    state: str
    info: dict[str, Any]
    trials: pd.DataFrame  # the columns of trials.csv, ranked by each trial's best epoch
    history: pd.DataFrame  # one row per trial-epoch
    evaluation: dict[str, Any] | None = None
    best: dict[str, Any] | None = None
    retrain: list[tuple[str, str]] = field(default_factory=list)  # (file name, markdown)
    pareto: pd.DataFrame | None = None  # pareto.csv of a multi-objective search

    @property
    def score(self) -> str:
        return f"best_{self.cfg.search.metric}"

    @property
    def searched(self) -> list[str]:
        """Searched parameters in the order of the space."""
        return [p.name for p in self.cfg.space]


def param_value(exp: Experiment, row: pd.Series, name: str) -> Any:
    """A trial's value of ``name``: its own when searched, else the fixed one from the config."""
    if name in row and not is_missing(row[name]):
        return row[name]
    if name == "layers":
        return exp.cfg.student.layers
    return getattr(exp.cfg.train, name, None)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("could not read %s: %s", path, exc)
        return None


def _read_trials_csv(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=_TEXT_COLUMNS, keep_default_na=False, na_values=[""])
    for col in ("anchor", "error", "status"):
        if col in frame:
            frame[col] = frame[col].astype(object).where(frame[col].notna(), "").astype(str)
    return frame


def _newest_mtime(folder: Path) -> float:
    """Newest modification time of ``folder``, its entries and the files one level below."""
    newest = folder.stat().st_mtime
    for entry in folder.iterdir():
        try:
            newest = max(newest, entry.stat().st_mtime)
            if entry.is_dir():
                for sub in entry.iterdir():
                    if sub.is_file():
                        newest = max(newest, sub.stat().st_mtime)
        except OSError:  # a file Ray replaced between listing and stat
            continue
    return newest


def experiment_state(exp_dir: Path, now: float | None = None) -> str:
    """'finished' (summary.md and evaluation.json exist), else 'running' or 'interrupted'."""
    if (exp_dir / "summary.md").is_file() and (exp_dir / "evaluation.json").is_file():
        return STATE_FINISHED
    tune_dir = exp_dir / "tune"
    folder = tune_dir if tune_dir.is_dir() else exp_dir
    now = time.time() if now is None else now
    return STATE_RUNNING if now - _newest_mtime(folder) < RUNNING_WINDOW_S else STATE_INTERRUPTED


@dataclass
class _TrialResult:
    """The attributes of a Ray ``Result`` that :func:`kdtune.results.trial_tables` reads."""

    path: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    metrics_dataframe: pd.DataFrame | None
    error: str | None


def _ray_statuses(tune_dir: Path) -> dict[str, str]:
    """Trial folder name -> Ray status (RUNNING, TERMINATED, ERROR, ...) from the newest state file."""
    states = sorted(tune_dir.glob("experiment_state-*.json"), key=lambda p: p.stat().st_mtime)
    if not states:
        return {}
    data = read_json(states[-1]) or {}
    out = {}
    for entry in data.get("trial_data", []):
        try:
            trial = json.loads(entry[0]) if isinstance(entry[0], str) else entry[0]
        except (json.JSONDecodeError, IndexError, TypeError):
            continue
        logdir = trial.get("relative_logdir") or ""
        if logdir:
            out[Path(logdir).name] = str(trial.get("status", ""))
    return out


def _read_result_lines(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # the line Ray is writing right now
            continue
    return rows


def _finished_log(exp_dir: Path) -> dict[str, str]:
    """Trial id -> 'terminated' / 'error' from ``trials_done.jsonl`` (written as trials end)."""
    out = {}
    for row in _read_result_lines(exp_dir / "trials_done.jsonl"):
        if row.get("trial_id"):
            out[str(row["trial_id"])] = str(row.get("status", ""))
    return out


def trials_from_tune(exp_dir: Path, cfg: ExperimentConfig, state: str
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, history) rebuilt from Ray's per-trial ``result.json`` of a partial search."""
    from kdtune.results import trial_tables  # pandas-heavy; only partial searches need it

    tune_dir = exp_dir / "tune"
    if not tune_dir.is_dir():
        return pd.DataFrame(), pd.DataFrame()
    statuses = _ray_statuses(tune_dir)
    done = _finished_log(exp_dir)  # durable even when Ray's state file is older than the kill
    results, ray_status = [], {}
    for folder in sorted(p for p in tune_dir.iterdir() if p.is_dir()):
        lines = _read_result_lines(folder / "result.json")
        params = read_json(folder / "params.json") if (folder / "params.json").is_file() else None
        config = params or (lines[-1].get("config") if lines else None)
        if config is None:
            continue  # not a trial folder
        rows = [{k: v for k, v in r.items() if k != "config"} for r in lines]
        frame = pd.DataFrame(rows) if rows else None
        if frame is not None and "epoch" in frame:  # a resumed trial may repeat an epoch
            frame = frame.drop_duplicates("epoch", keep="last").reset_index(drop=True)
        match = re.search(r"_([0-9a-f]{5,})_\d+_", folder.name)
        tid = (rows[-1].get("trial_id") if rows else None) or (match.group(1) if match else folder.name)
        error_file = folder / "error.txt"
        error = (error_file.read_text(encoding="utf-8", errors="replace") or "error"
                 if error_file.is_file() else None)
        if error is None and (done.get(tid) == "error" or statuses.get(folder.name) == "ERROR"):
            error = "the trial failed (see Ray's logs)"
        metrics = {**(rows[-1] if rows else {}), "trial_id": tid}
        results.append(_TrialResult(str(folder), config, metrics, frame, error))
        ray_status[tid] = "TERMINATED" if done.get(tid) == "terminated" else statuses.get(folder.name, "")
    if not results:
        return pd.DataFrame(), pd.DataFrame()
    trials, history = trial_tables(results, cfg)
    unfinished = STATE_RUNNING if state == STATE_RUNNING else STATE_INTERRUPTED
    for i, row in trials.iterrows():
        if row["status"] == "stopped early" and ray_status.get(row["trial_id"]) != "TERMINATED":
            trials.loc[i, "status"] = unfinished  # ASHA did not stop it: it is (or was) running
    return trials, history


def load_experiment(exp_dir: Path) -> Experiment:
    """Read an experiment folder; raises :class:`ReportError` when it is not one."""
    exp_dir = Path(exp_dir)
    if not exp_dir.exists():
        raise ReportError(f"{str(exp_dir)!r} does not exist; give results/<experiment>")
    if not exp_dir.is_dir():
        raise ReportError(f"{str(exp_dir)!r} is not a folder; give results/<experiment>")
    if not (exp_dir / "config.yaml").is_file():
        raise ReportError(f"{str(exp_dir)!r} is not a kdtune experiment (no config.yaml); "
                          "give results/<experiment>")
    try:
        cfg = load_config(exp_dir / "config.yaml")
    except ConfigError as exc:
        raise ReportError(f"{exp_dir / 'config.yaml'} is not a valid kdtune config ({exc})") from None
    state = experiment_state(exp_dir)

    def optional_json(name: str) -> Any:
        return read_json(exp_dir / name) if (exp_dir / name).is_file() else None

    info = optional_json("run_info.json") or {}
    if (exp_dir / "trials.csv").is_file():
        try:
            trials = _read_trials_csv(exp_dir / "trials.csv")
            history = (pd.read_csv(exp_dir / "history.csv", dtype={"trial_id": str})
                       if (exp_dir / "history.csv").is_file() else pd.DataFrame())
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise ReportError(f"trials.csv or history.csv in {str(exp_dir)!r} is unreadable "
                              f"({type(exc).__name__}); re-run the search or --resume it") from None
    else:
        trials, history = trials_from_tune(exp_dir, cfg, state)
    for col in ("anchor", "error", "status"):
        if col in trials:
            trials[col] = trials[col].astype(object).where(trials[col].notna(), "").astype(str)
    score = f"best_{cfg.search.metric}"
    if score in trials:
        trials = trials.sort_values(score, ascending=(cfg.search.mode == "min"), kind="stable",
                                    na_position="last").reset_index(drop=True)
    pareto = None
    if (exp_dir / "pareto.csv").is_file():
        try:
            pareto = _read_trials_csv(exp_dir / "pareto.csv")
        except (OSError, ValueError) as exc:  # pandas' parser errors are ValueErrors
            log.warning("could not read %s: %s", exp_dir / "pareto.csv", exc)
    retrain = [(name, (exp_dir / "retrain" / name).read_text(encoding="utf-8"))
               for name in ("summary.md", "comparison.md") if (exp_dir / "retrain" / name).is_file()]
    return Experiment(exp_dir, cfg, state, info, trials, history, optional_json("evaluation.json"),
                      optional_json("best_trial.json"), retrain, pareto)
