"""CLI: ``python -m kdtune.report results/<experiment>``: the report a practitioner reads.

Writes ``report.md`` and a self-contained ``report.html`` (images embedded as data URIs, no
network) into the experiment folder, and the PNGs and CSVs they show into ``report/``:

* a leaderboard of the top trials, ranked by each trial's best epoch;
* the seed's per-class precision / recall / F1 tables on the held-out test split (baseline,
  teacher, best distilled student, with deltas), F1 across all models and the student's
  confusion matrix;
* an efficiency table measured on this machine's CPU from the saved models (cached in
  ``report/efficiency.csv``);
* plots: val macro-F1 over alpha x temperature, learning curves, KD / CE losses of the best
  trial, Optuna's optimisation history and parameter importances, epochs granted by ASHA;
* a verdict written from the numbers, and any multi-seed re-training results.

It works on a finished search, on an interrupted one (no ``trials.csv``: trials are rebuilt from
Ray's ``tune/*/result.json``) and on one still running.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import logging
import math
import re
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kdtune.cli import ArgumentParser
from kdtune.config import ConfigError, ExperimentConfig, load_config
from kdtune.files import atomic_write_csv, atomic_write_text

log = logging.getLogger("kdtune.report")

EXIT_BAD_INPUT = 2
RUNNING_WINDOW_S = 60.0  # tune/ touched this recently: the search is still running
STATE_FINISHED, STATE_RUNNING, STATE_INTERRUPTED = "finished", "running", "interrupted"
MODEL_ORDER = ("baseline", "teacher", "distilled")  # the seed's column order
PARAM_LABELS = {"alpha": "alpha", "temperature": "T", "learning_rate": "lr"}
STATUS_MARKERS = {"completed": "o", "stopped early": "v", "errored": "X", "diverged": "X",
                  "running": "s", "interrupted": "s"}
WEIGHT_SUFFIXES = (".safetensors", ".bin")


class ReportError(Exception):
    """Bad input (no such folder, not a kdtune experiment); the message is one line."""


# --------------------------------------------------------------------------- loading


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

    @property
    def score(self) -> str:
        return f"best_{self.cfg.search.metric}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("could not read %s: %s", path, exc)
        return None


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
    data = _read_json(states[-1]) or {}
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


def _finished_log(exp_dir: Path) -> dict[str, str]:
    """Trial id -> 'terminated' / 'error' from ``trials_done.jsonl`` (written as trials end)."""
    out = {}
    for row in _read_result_lines(exp_dir / "trials_done.jsonl"):
        if row.get("trial_id"):
            out[str(row["trial_id"])] = str(row.get("status", ""))
    return out


def _read_result_lines(path: Path) -> list[dict[str, Any]]:
    rows = []
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
        params = _read_json(folder / "params.json") if (folder / "params.json").is_file() else None
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
    info = (_read_json(exp_dir / "run_info.json") or {}) if (exp_dir / "run_info.json").is_file() else {}
    if (exp_dir / "trials.csv").is_file():
        # trial ids are hex ("1234e567", "00012345"): read them as text, never as numbers
        text = {"trial_id": str, "anchor": str, "status": str, "error": str}
        trials = pd.read_csv(exp_dir / "trials.csv", dtype=text, keep_default_na=False,
                             na_values=[""])
        history = (pd.read_csv(exp_dir / "history.csv", dtype={"trial_id": str})
                   if (exp_dir / "history.csv").is_file() else pd.DataFrame())
    else:
        trials, history = trials_from_tune(exp_dir, cfg, state)
    for col in ("anchor", "error", "status"):
        if col in trials:
            trials[col] = trials[col].astype(object).where(trials[col].notna(), "").astype(str)
    score = f"best_{cfg.search.metric}"
    if score in trials:
        trials = trials.sort_values(score, ascending=(cfg.search.mode == "min"), kind="stable",
                                    na_position="last").reset_index(drop=True)
    evaluation = (_read_json(exp_dir / "evaluation.json")
                  if (exp_dir / "evaluation.json").is_file() else None)
    best = (_read_json(exp_dir / "best_trial.json")
            if (exp_dir / "best_trial.json").is_file() else None)
    retrain = [(name, (exp_dir / "retrain" / name).read_text(encoding="utf-8"))
               for name in ("summary.md", "comparison.md") if (exp_dir / "retrain" / name).is_file()]
    return Experiment(exp_dir, cfg, state, info, trials, history, evaluation, best, retrain)


# --------------------------------------------------------------------------- tables


def _param_value(exp: Experiment, row: pd.Series, name: str) -> Any:
    if name in row and not pd.isna(row[name]):
        return row[name]
    return getattr(exp.cfg.train, name, None)


def leaderboard(exp: Experiment, top: int) -> pd.DataFrame:
    """The top trials ranked by their best epoch (not their last)."""
    searched = [p.name for p in exp.cfg.space]
    params = ["alpha", "temperature", "learning_rate", *[p for p in searched if p not in PARAM_LABELS]]
    rows = []
    for rank, (_, r) in enumerate(exp.trials.head(top).iterrows(), start=1):
        status = r.get("status", "")
        error = str(r.get("error", "") or "").strip().splitlines()
        if status in ("errored", "diverged") and error:
            status = f"{status}: {error[0][:160]}"
        row: dict[str, Any] = {"rank": rank, "trial": r["trial_id"], "anchor": r.get("anchor", "")}
        row.update({p: _param_value(exp, r, p) for p in params})
        row.update({"epochs run": int(r.get("epochs_run", 0) or 0),
                    "best epoch": _int_or_none(r.get("best_epoch")),
                    "best val accuracy": _float_or_none(r.get("best_val_accuracy")),
                    "best val macro-F1": _float_or_none(r.get("best_val_macro_f1")),
                    "status": status})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):  # keep whole epochs whole when some trial has none yet
        frame["best epoch"] = pd.Series([r["best epoch"] for r in rows], dtype=object)
    return frame


def _int_or_none(v: Any) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def _float_or_none(v: Any) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def _models(evaluation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Evaluated models in the seed's order: baseline, teacher, distilled."""
    models = evaluation.get("models") or {}
    return {k: models[k] for k in MODEL_ORDER if models.get(k)}


def per_class_test_table(evaluation: dict[str, Any]) -> pd.DataFrame:
    """Per-class P / R / F1 on test for each model, with student-minus-reference F1 deltas."""
    models = _models(evaluation)
    names = evaluation["label_names"]
    rows = []
    for name in names:
        row: dict[str, Any] = {"class": name}
        for model, ev in models.items():
            pc = ev["test"]["per_class"][name]
            row.update({f"{model} P": pc["precision"], f"{model} R": pc["recall"],
                        f"{model} F1": pc["f1"]})
        rows.append(row)
    frame = pd.DataFrame(rows)
    macro: dict[str, Any] = {"class": "macro avg"}
    macro.update({c: float(frame[c].mean()) for c in frame.columns if c != "class"})
    frame = pd.concat([frame, pd.DataFrame([macro])], ignore_index=True)
    if "distilled" in models:
        for ref in ("baseline", "teacher"):
            if ref in models:
                frame[f"ΔF1 vs {ref}"] = frame["distilled F1"] - frame[f"{ref} F1"]
    return frame


def f1_all_models_table(evaluation: dict[str, Any], split: str = "test") -> pd.DataFrame:
    """Rows: each class, macro-F1 and accuracy; columns: each model's value on ``split``."""
    models = _models(evaluation)
    rows = []
    for name in evaluation["label_names"]:
        rows.append({"": f"F1 {name}", **{m: ev[split]["per_class"][name]["f1"]
                                          for m, ev in models.items()}})
    rows.append({"": "macro-F1", **{m: ev[split]["macro_f1"] for m, ev in models.items()}})
    rows.append({"": "accuracy", **{m: ev[split]["accuracy"] for m, ev in models.items()}})
    return pd.DataFrame(rows)


def confusion_table(evaluation: dict[str, Any], model: str = "distilled") -> pd.DataFrame | None:
    """Confusion matrix of ``model`` on test (rows: true class, columns: predicted)."""
    from sklearn.metrics import confusion_matrix

    ev = (evaluation.get("models") or {}).get(model)
    preds = (ev or {}).get("test", {}).get("predictions")
    labels = (evaluation.get("labels") or {}).get("test")
    if preds is None or labels is None:
        return None
    names = evaluation["label_names"]
    cm = confusion_matrix(labels, preds, labels=list(range(len(names))))
    frame = pd.DataFrame(cm, columns=[f"pred {n}" for n in names])
    frame.insert(0, "true \\ predicted", names)
    return frame


# --------------------------------------------------------------------------- efficiency


def _resolve_dir(path: str | None, exp: Experiment) -> Path | None:
    """A model folder recorded relative to the search's working directory, found from here."""
    if not path:
        return None
    p = Path(path)
    # relative paths are relative to where the search ran: usually the project root, which is
    # also the parent of results/ when the report runs from elsewhere
    candidates = [p] if p.is_absolute() else [p, exp.dir.resolve().parent.parent / p]
    for c in candidates:
        if (c / "config.json").is_file():
            return c
    return None


def model_dirs(exp: Experiment) -> dict[str, Path]:
    """Saved folders of teacher, baseline and distilled student that exist on disk."""
    out: dict[str, Path] = {}
    models = (exp.evaluation or {}).get("models") or {}
    teacher = (models.get("teacher") or {}).get("dir")
    if teacher is None and exp.info.get("teacher_dir"):
        teacher = str(Path(exp.info["teacher_dir"]) / "model")
    for name, recorded in (("teacher", teacher),
                           ("baseline", (models.get("baseline") or {}).get("dir")),
                           ("distilled", (models.get("distilled") or {}).get("dir"))):
        found = _resolve_dir(recorded, exp) or (
            _resolve_dir(str(exp.dir / "models" / name), exp) if name != "teacher" else None)
        if found is not None:
            out[name] = found
    return out


def _weights_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)


def measure_model(folder: Path, texts: list[str], max_length: int, latency_n: int = 30,
                  batch: int = 32, batches: int = 2) -> dict[str, Any]:
    """Parameters, weights size and CPU latency (batch 1) / throughput (batch ``batch``).

    Runs on one CPU thread: on a machine other processes share, several threads contend and
    the timings swing tenfold; one thread gives comparable numbers for every model.
    """
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(folder, texts, max_length, latency_n, batch, batches)
    finally:
        torch.set_num_threads(threads)


def _measure(folder: Path, texts: list[str], max_length: int, latency_n: int, batch: int,
             batches: int) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).to("cpu").eval()
    singles = [tok(t, truncation=True, max_length=max_length, return_tensors="pt")
               for t in texts[:latency_n]]
    pool = (texts * (batch * (batches + 1) // max(len(texts), 1) + 1))[:batch * (batches + 1)]
    groups = [tok(pool[i:i + batch], truncation=True, max_length=max_length, padding=True,
                  return_tensors="pt") for i in range(0, len(pool), batch)]
    with torch.inference_mode():
        for enc in singles[:3]:  # warm-up
            model(**enc)
        times = []
        for enc in singles:
            t0 = time.perf_counter()
            model(**enc)
            times.append(time.perf_counter() - t0)
        model(**groups[0])  # warm-up
        t0 = time.perf_counter()
        for enc in groups[1:]:
            model(**enc)
        elapsed = time.perf_counter() - t0
    return {"params": int(sum(p.numel() for p in model.parameters())),
            "size_mb": _weights_bytes(folder) / 1e6,
            "latency_ms": 1000.0 * statistics.median(times),
            "throughput": batch * (len(groups) - 1) / elapsed,
            "threads": torch.get_num_threads(), "weights_bytes": _weights_bytes(folder),
            "dir": str(folder)}


def efficiency_table(exp: Experiment, out_dir: Path, remeasure: bool = False
                     ) -> tuple[pd.DataFrame | None, str]:
    """Measured (or cached) efficiency rows and a note saying how they were obtained."""
    dirs = model_dirs(exp)
    if not dirs:
        return None, "No saved model folder was found, so nothing was measured."
    cache = out_dir / "efficiency.csv"
    if cache.is_file() and not remeasure:
        cached = pd.read_csv(cache)
        same = (sorted(cached["model"]) == sorted(dirs)
                and all(int(cached.loc[cached["model"] == m, "weights_bytes"].iloc[0])
                        == _weights_bytes(d) for m, d in dirs.items()))
        if same:
            return cached, "Cached measurement from report/efficiency.csv (pass --remeasure to redo it)."
    from kdtune.data import load_splits

    data = exp.cfg.data
    if data.path and not Path(data.path).is_absolute() and not Path(data.path).is_file():
        beside = exp.dir.resolve().parent.parent / data.path  # run from outside the project
        if beside.is_file():
            data = dataclasses.replace(data, path=str(beside))
    try:
        splits = load_splits(data)
    except Exception as exc:  # noqa: BLE001 - e.g. the hub is unreachable; the report goes on
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return None, f"Efficiency not measured: the data could not be loaded ({first})."
    texts = splits.test["text"].astype(str).tolist()
    rows = []
    for name in ("teacher", "baseline", "distilled"):
        if name not in dirs:
            continue
        t0 = time.perf_counter()
        try:
            m = measure_model(dirs[name], texts, exp.cfg.data.max_length)
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("could not measure %s in %s: %s", name, dirs[name], exc)
            continue
        log.info("measured %s in %.1f s", name, time.perf_counter() - t0)
        rows.append({"model": name, **m})
    if not rows:
        return None, "Efficiency not measured: no model could be loaded."
    frame = pd.DataFrame(rows)
    teacher = frame[frame["model"] == "teacher"]
    if len(teacher):
        t = teacher.iloc[0]
        frame["speed-up vs teacher"] = t["latency_ms"] / frame["latency_ms"]
        frame["size ratio vs teacher"] = frame["size_mb"] / t["size_mb"]
    atomic_write_csv(cache, frame)
    return frame, "Measured now."


def _efficiency_display(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"model": frame["model"],
                        "params (M)": frame["params"] / 1e6,
                        "size on disk (MB)": frame["size_mb"],
                        "latency (ms/example, batch 1)": frame["latency_ms"],
                        "throughput (examples/s, batch 32)": frame["throughput"]})
    for col in ("speed-up vs teacher", "size ratio vs teacher"):
        if col in frame:
            out[col] = frame[col].map(lambda v: f"{v:.2f}x")
    return out


# --------------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tight_layout cannot always fit outside legends
        fig.tight_layout()
        fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def plot_alpha_temperature(exp: Experiment, path: Path) -> Path | None:
    """Best val macro-F1 of each trial over the alpha x temperature plane."""
    t = exp.trials
    if not len(t):
        return None
    plt = _pyplot()
    alpha = [float(_param_value(exp, r, "alpha")) for _, r in t.iterrows()]
    temp = [float(_param_value(exp, r, "temperature")) for _, r in t.iterrows()]
    score = t["best_val_macro_f1"] if "best_val_macro_f1" in t else pd.Series(np.nan, index=t.index)
    fig, ax = plt.subplots(figsize=(7, 5))
    valid = score.notna().to_numpy()
    vmin, vmax = (float(score.min()), float(score.max())) if valid.any() else (0.0, 1.0)
    sc = None
    for status, marker in STATUS_MARKERS.items():
        sel = (t["status"] == status).to_numpy()
        if not sel.any():
            continue
        ok, bad = sel & valid, sel & ~valid
        if ok.any():
            sc = ax.scatter(np.array(alpha)[ok], np.array(temp)[ok], c=score[ok], cmap="viridis",
                            vmin=vmin, vmax=vmax, marker=marker, s=110, edgecolors="black",
                            )
        if bad.any():
            ax.scatter(np.array(alpha)[bad], np.array(temp)[bad], c="lightgrey", marker=marker,
                       s=110, edgecolors="black")
    for i, (_, r) in enumerate(t.iterrows()):
        tag = r.get("anchor") or ("best" if i == 0 and valid[0] else "")
        if tag:
            ax.annotate(tag, (alpha[i], temp[i]), xytext=(6, 6), textcoords="offset points",
                        fontsize=8)
    if sc is not None:
        fig.colorbar(sc, ax=ax, label="best val macro-F1")
    ax.set_xlabel("alpha (weight of the CE loss; 1 = no distillation)")
    ax.set_ylabel("temperature T")
    ax.set_title("Val macro-F1 over alpha x temperature (marker = status)")
    from matplotlib.lines import Line2D

    shown = [s for s in STATUS_MARKERS if (t["status"] == s).any()]
    ax.legend([Line2D([], [], marker=STATUS_MARKERS[s], linestyle="", markerfacecolor="white",
                      markeredgecolor="black", markersize=9) for s in shown], shown,
              fontsize=8, loc="best", title="status (grey: no score)", title_fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_learning_curves(exp: Experiment, path: Path, top: int) -> Path | None:
    """Val macro-F1 per epoch of the top trials."""
    h = exp.history
    if not len(h) or "val_macro_f1" not in h or "trial_id" not in h:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for _, r in exp.trials.head(top).iterrows():
        rows = h[h["trial_id"].astype(str) == str(r["trial_id"])].sort_values("epoch")
        if not len(rows):
            continue
        label = (f"{r['trial_id']} (alpha {_param_value(exp, r, 'alpha'):.2f}, "
                 f"T {_param_value(exp, r, 'temperature'):.1f})")
        if r.get("anchor"):
            label += f" [{r['anchor']}]"
        ax.plot(rows["epoch"], rows["val_macro_f1"], marker="o",
                linestyle="--" if r.get("anchor") else "-", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val macro-F1")
    ax.set_title(f"Learning curves of the top {min(top, len(exp.trials))} trials")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_losses(exp: Experiment, path: Path, trial_id: str) -> Path | None:
    """Combined, CE and KD loss, and the KD/CE ratio per epoch of one trial."""
    h = exp.history
    if not len(h) or "trial_id" not in h:
        return None
    rows = h[h["trial_id"].astype(str) == str(trial_id)].sort_values("epoch")
    if not len(rows) or "ce_loss" not in rows:
        return None
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4))
    for col, label in (("loss", "combined loss"), ("ce_loss", "CE loss"), ("kd_loss", "KD loss")):
        if col in rows:
            ax1.plot(rows["epoch"], rows[col], marker="o", label=label)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss (epoch mean)")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    if "kd_ce_ratio" in rows:
        ax2.plot(rows["epoch"], rows["kd_ce_ratio"], marker="o", color="tab:purple")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("KD / CE ratio")
    ax2.grid(alpha=0.3)
    for ax in (ax1, ax2):
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(f"Losses of the best trial {trial_id}")
    return _save(fig, path)


def plot_epochs_granted(exp: Experiment, path: Path) -> tuple[Path | None, str]:
    """Epochs each trial ran (ASHA stops the weak ones early) and the saving it made."""
    t = exp.trials
    budget = exp.cfg.search.num_samples * exp.cfg.train.epochs
    if not len(t):
        return None, ""
    order = t.assign(_n=[_trial_number(p) for p in t.get("path", pd.Series([""] * len(t)))])
    order = order.sort_values("_n", kind="stable")
    run = int(order["epochs_run"].fillna(0).sum())
    note = (f"{run} trial-epochs run of {budget} ({exp.cfg.search.num_samples} trials x "
            f"{exp.cfg.train.epochs} epochs) without early stopping: ASHA saved "
            f"{budget - run} ({100.0 * (budget - run) / budget:.0f}%).")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(order) + 2), 4))
    colours = {"completed": "tab:green", "stopped early": "tab:orange", "errored": "tab:red",
               "diverged": "tab:red", "running": "tab:blue", "interrupted": "tab:gray"}
    ax.bar(order["trial_id"].astype(str), order["epochs_run"].fillna(0),
           color=[colours.get(s, "tab:gray") for s in order["status"]])
    ax.axhline(exp.cfg.train.epochs, color="black", linestyle="--", linewidth=1,
               label=f"max epochs ({exp.cfg.train.epochs})")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for s, c in colours.items()
               if s in set(order["status"])]
    labels = [s for s in colours if s in set(order["status"])]
    ax.legend([*ax.get_legend_handles_labels()[0], *handles],
              [*ax.get_legend_handles_labels()[1], *labels], fontsize=8, loc="upper right")
    ax.set_ylim(0, exp.cfg.train.epochs * 1.35)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("trial (in start order)")
    ax.set_ylabel("epochs run")
    ax.set_title(f"Epochs granted per trial: {run} of {budget} trial-epochs")
    ax.tick_params(axis="x", labelrotation=60, labelsize=8)
    return _save(fig, path), note


def _trial_number(path: Any) -> int:
    match = re.search(r"_[0-9a-f]{5,}_(\d+)_", Path(str(path)).name)
    return int(match.group(1)) if match else 10**9


def plot_optuna(exp: Experiment, out_dir: Path) -> dict[str, tuple[Path | None, str]]:
    """Optuna's optimisation history and parameter importances from ``optuna.db``."""
    db = exp.dir / "optuna.db"
    if not db.is_file():
        return {"history": (None, "No optuna.db in the experiment folder."),
                "importances": (None, "No optuna.db in the experiment folder.")}
    import optuna
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{db.resolve()}"
    try:
        names = optuna.get_all_study_names(storage)
        name = exp.cfg.name if exp.cfg.name in names else (names[0] if len(names) == 1 else None)
        if name is None:
            raise ValueError(f"no study named {exp.cfg.name!r} in {db}")
        study = optuna.load_study(study_name=name, storage=storage)
    except Exception as exc:  # noqa: BLE001 - a locked or odd database must not stop the report
        note = f"The Optuna study could not be read ({type(exc).__name__}: {exc})."
        return {"history": (None, note), "importances": (None, note)}
    out: dict[str, tuple[Path | None, str]] = {}
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                and t.value is not None]
    plt = _pyplot()
    with warnings.catch_warnings(), plt.rc_context():  # optuna switches to ggplot style globally
        warnings.simplefilter("ignore")
        if finished:
            ax = ovm.plot_optimization_history(study, target_name="val macro-F1 (last epoch)")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.figure.set_size_inches(8, 4.5)
            out["history"] = (_save(ax.figure, out_dir / "optuna_history.png"),
                              "Objective = the trial's last reported epoch (what Optuna was told).")
        else:
            out["history"] = (None, "No Optuna trial has finished yet.")
        completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
        if len(completed) < 2:
            out["importances"] = (None, f"Parameter importances need at least 2 completed trials; "
                                        f"the study has {len(completed)}.")
        else:
            try:
                ax = ovm.plot_param_importances(study, target_name="val macro-F1")
                ax.figure.set_size_inches(7, 3.5)
                out["importances"] = (_save(ax.figure, out_dir / "optuna_importances.png"),
                                      f"fANOVA over {len(completed)} completed trials; with few "
                                      "trials the ranking is rough.")
            except Exception as exc:  # noqa: BLE001 - e.g. every trial sampled the same value
                _pyplot().close("all")
                out["importances"] = (None, f"Parameter importances could not be computed "
                                            f"({type(exc).__name__}: {exc}).")
    return out


def plot_confusion(cm: pd.DataFrame, path: Path, title: str) -> Path:
    plt = _pyplot()
    values = cm.drop(columns=cm.columns[0]).to_numpy()
    names = list(cm.iloc[:, 0])
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    im = ax.imshow(values, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    threshold = values.max() / 2 if values.size else 0
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, int(values[i, j]), ha="center", va="center",
                    color="white" if values[i, j] > threshold else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    return _save(fig, path)


# --------------------------------------------------------------------------- verdict


def _spread(exp: Experiment, top: int) -> float | None:
    if exp.score not in exp.trials:
        return None
    ok = exp.trials[exp.trials["status"].isin(["completed", "stopped early"])]
    values = ok[exp.score].dropna().head(top)
    return float(values.std(ddof=1)) if len(values) >= 2 else None


_METRIC_NAMES = {"val_macro_f1": "macro-F1", "val_accuracy": "accuracy"}


def _recommended(exp: Experiment) -> str:
    if not exp.best:
        return ""
    config = exp.best.get("config") or {}
    searched = [p.name for p in exp.cfg.space]
    parts = [f"{n} = {_num(config[n])}" for n in ["alpha", "temperature", "learning_rate",
                                                   *[s for s in searched if s not in PARAM_LABELS]]
             if n in config]
    anchor = f", the {exp.best['anchor']} anchor" if exp.best.get("anchor") else ""
    text = (f"**Recommended config** (trial `{exp.best['trial_id']}`{anchor}, best val "
            f"{_METRIC_NAMES.get(exp.cfg.search.metric, exp.cfg.search.metric)} "
            f"{_num(exp.best.get('score'))} at epoch "
            f"{exp.best.get('best_epoch')}): " + ", ".join(parts) + ".")
    if float(config.get("alpha", 0.0)) >= 1.0:
        text += (" That is the CE-only baseline: no distillation setting beat plain fine-tuning "
                 "on validation in this search.")
    return text


def _signed(v: float) -> str:
    """``+0.0123``; differences that round to zero print as ``+0.0000``, never ``-0.0000``."""
    return f"{(0.0 if abs(v) < 5e-5 else v):+.4f}"


def _num(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if not isinstance(v, (list, tuple, dict)) and pd.isna(v):
        return "-"
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return f"{v:.3e}" if v != 0 and abs(v) < 1e-3 else f"{v:.{digits}f}"
    return str(v)


def verdict(exp: Experiment, top: int) -> list[str]:
    """Paragraphs in plain language, written from the numbers."""
    retrain_cmd = f"`python -m kdtune.retrain {exp.dir}`"
    paras: list[str] = []
    spread = _spread(exp, top)
    models = _models(exp.evaluation) if exp.evaluation else {}
    if "distilled" in models and "baseline" in models:
        s, b = models["distilled"], models["baseline"]
        gain = s["test"]["macro_f1"] - b["test"]["macro_f1"]
        val_test = abs(s["val"]["macro_f1"] - s["test"]["macro_f1"])
        n_test = len((exp.evaluation.get("labels") or {}).get("test") or [])
        picks = exp.evaluation.get("picks") or {}
        verb = "beats" if gain > 0 else ("ties with" if gain == 0 else "does not beat")
        text = (f"The best distilled student (trial `{picks.get('distilled')}`) **{verb}** the "
                f"CE-only baseline (trial `{picks.get('baseline')}`) on held-out test macro-F1: "
                f"{s['test']['macro_f1']:.4f} vs {b['test']['macro_f1']:.4f}, a difference of "
                f"{_signed(gain)} ({100 * gain:+.1f} points) on {n_test} test examples.")
        noise = [("the spread between the top trials' best val macro-F1 (std "
                  f"{spread:.4f})", spread)] if spread is not None else []
        noise.append((f"the student's validation/test difference ({val_test:.4f})", val_test))
        larger = [d for d, v in noise if abs(gain) > v]
        smaller = [d for d, v in noise if abs(gain) <= v]
        if not smaller:
            text += (" The gap is larger than " + " and than ".join(larger) + ", so it stands out "
                     "from the noise of this one search.")
        elif not larger:
            text += (" The gap is not larger than " + " nor than ".join(smaller) + ", so it is "
                     "within the noise of this search and should not be read as a real difference.")
        else:
            text += (" The gap is larger than " + " and ".join(larger) + " but not than "
                     + " and ".join(smaller) + ", so the evidence is weak.")
        if "teacher" in models:
            t_gap = s["test"]["macro_f1"] - models["teacher"]["test"]["macro_f1"]
            text += (f" Against the teacher the student is {_signed(t_gap)} test macro-F1 "
                     f"({'above' if t_gap > 0 else 'below' if t_gap < 0 else 'level with'} it).")
        paras.append(text)
    elif exp.evaluation:
        missing = [m for m in ("baseline", "distilled") if m not in models]
        paras.append(f"No {' and no '.join(missing)} model was evaluated (no such trial finished), "
                     "so the distillation-vs-baseline comparison cannot be made from this search.")
    else:
        paras.append(_partial_verdict(exp))
    if exp.retrain:
        paras.append("Multi-seed re-training results are present (see **Re-training** below): "
                     "trust them over the single-seed comparison above.")
    else:
        paras.append("Caveat: one search run is one seed per configuration, and the best trial was "
                     "chosen on the same validation split it is scored on, so small gaps can be "
                     f"luck. Re-train the baseline and the recommended config over several seeds "
                     f"with {retrain_cmd} before trusting a difference of a few points.")
    rec = _recommended(exp)
    if rec:
        paras.append(rec)
    return paras


def _partial_verdict(exp: Experiment) -> str:
    where = ("still running" if exp.state == STATE_RUNNING else
             f"interrupted; continue it with `python -m kdtune.search --resume {exp.dir}`")
    t = exp.trials
    if exp.score not in t or not t[exp.score].notna().any():
        return f"The search is {where}. No trial has reported a validation score yet."
    best = t.iloc[0]
    text = (f"The search is {where}: {len(t)} trials so far. The best val macro-F1 so far is "
            f"{best['best_val_macro_f1']:.4f} (trial `{best['trial_id']}`, alpha "
            f"{_param_value(exp, best, 'alpha'):.3f}, T {_param_value(exp, best, 'temperature'):.2f}).")
    scored = t[t[exp.score].notna()]
    base = scored[scored["anchor"] == "baseline"] if "anchor" in scored else scored.iloc[0:0]
    alphas = pd.Series([float(_param_value(exp, r, "alpha")) for _, r in scored.iterrows()],
                       index=scored.index, dtype=float)
    distilled = scored[alphas < 1.0]
    if len(base) and len(distilled):
        b, d = base.iloc[0], distilled.iloc[0]
        gain = d["best_val_macro_f1"] - b["best_val_macro_f1"]
        text += (f" The best distilled trial so far (`{d['trial_id']}`) has "
                 f"{d['best_val_macro_f1']:.4f} against {b['best_val_macro_f1']:.4f} for the CE-only "
                 f"baseline, a validation difference of {_signed(gain)}.")
    return text + " Test-split numbers come when the search finishes."


# --------------------------------------------------------------------------- document


_INLINE = [(re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
           (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>")]


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)
    return out


def _cell(v: Any) -> str:
    if isinstance(v, float) and not math.isnan(v) and v != 0 and abs(v) >= 1e-3:
        return f"{v:.4f}"
    return _num(v)


class Doc:
    """Builds the markdown and the HTML report side by side."""

    def __init__(self, exp_dir: Path):
        self.exp_dir = exp_dir
        self.md: list[str] = []
        self.html: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.md += ["#" * level + " " + text, ""]
        self.html.append(f"<h{level}>{_inline(text)}</h{level}>")

    def para(self, text: str) -> None:
        self.md += [text, ""]
        self.html.append(f"<p>{_inline(text)}</p>")

    def bullets(self, items: list[str]) -> None:
        self.md += [f"- {i}" for i in items] + [""]
        self.html.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")

    def table(self, frame: pd.DataFrame, signed: tuple[str, ...] = ()) -> None:
        cols = list(frame.columns)

        def fmt(c: str, v: Any) -> str:
            if c in signed and isinstance(v, float) and not math.isnan(v):
                return _signed(v)
            return _cell(v)

        rows = [[fmt(c, r[c]) for c in cols] for _, r in frame.iterrows()]
        self.md += ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
        self.md += ["| " + " | ".join(x.replace("|", "\\|") for x in row) + " |" for row in rows]
        self.md.append("")
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
        body = "".join("<tr>" + "".join(
            f"<td{' class=num' if _is_number(x) else ''}>{html.escape(x)}</td>" for x in row)
            + "</tr>" for row in rows)
        self.html.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def image(self, path: Path, alt: str) -> None:
        rel = path.relative_to(self.exp_dir).as_posix()
        self.md += [f"![{alt}]({rel})", ""]
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        self.html.append(f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(alt)}</figcaption></figure>")

    def markdown(self, text: str) -> None:
        self.md += [text.strip(), ""]
        self.html.append(markdown_to_html(text))

    def render_html(self, title: str) -> str:
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<link rel=\"icon\" href=\"data:,\"><title>{html.escape(title)}</title>"
                f"<style>{_CSS}</style></head><body><main>\n" + "\n".join(self.html)
                + "\n</main></body></html>\n")


def _is_number(text: str) -> bool:
    return bool(re.fullmatch(r"[+-]?[\d.,]+(e[+-]?\d+)?x?", text))


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1150px;margin:0 auto;padding:1.5em 2em;background:#fff}
h1{border-bottom:2px solid #444;padding-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:left}th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even) td{background:#fbfbfb}
code{background:#f3f3f3;padding:0 .25em;border-radius:3px}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}.state{font-weight:bold}
"""


def markdown_to_html(text: str) -> str:
    """A small converter for the markdown kdtune writes: headings, tables, lists, paragraphs."""
    out: list[str] = []
    lines = text.strip().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line.strip():
            i += 1
        elif m := re.match(r"(#{1,6})\s+(.*)", line):
            level = min(len(m.group(1)) + 2, 6)  # nested under the report's own headings
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
            i += 1
        elif line.lstrip().startswith("|"):
            block = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                block.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            rows = [r for r in block if not all(re.fullmatch(r":?-{2,}:?", c) for c in r)]
            head, body = rows[0], rows[1:]
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head)
                       + "</tr></thead><tbody>" + "".join(
                           "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>"
                           for r in body) + "</tbody></table>")
        elif re.match(r"\s*[-*]\s+", line):
            items = []
            while i < len(lines) and re.match(r"\s*[-*]\s+", lines[i]):
                items.append(re.sub(r"^\s*[-*]\s+", "", lines[i]))
                i += 1
            out.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in items) + "</ul>")
        elif line.startswith("```"):
            i += 1
            code = []
            while i < len(lines) and not lines[i].startswith("```"):
                code.append(lines[i])
                i += 1
            i += 1
            out.append("<pre>" + html.escape("\n".join(code)) + "</pre>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"(#|\||\s*[-*]\s|```)",
                                                                       lines[i]):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(out)


# --------------------------------------------------------------------------- render


def _facts(exp: Experiment) -> list[str]:
    cfg, info, t = exp.cfg, exp.info, exp.trials
    state = {STATE_FINISHED: "finished",
             STATE_RUNNING: "running (tune/ changed in the last minute); this is a snapshot",
             STATE_INTERRUPTED: "interrupted (partial): no summary.md / evaluation.json yet; resume "
                                f"with `python -m kdtune.search --resume {exp.dir}`"}[exp.state]
    facts = [f"state: **{state}**"]
    if info:
        rows = info.get("rows") or {}
        facts.append(f"data: `{info.get('source')}`: {rows.get('train')} train / {rows.get('val')} "
                     f"validation / {rows.get('test')} held-out test rows")
        facts.append(f"teacher: `{cfg.teacher.finetuned or cfg.teacher.model}` (cache "
                     f"`{info.get('teacher_key')}`); student: {info.get('student')}")
    if len(t):
        counts = ", ".join(f"{n} {s}" for s, n in t["status"].value_counts().items())
        facts.append(f"trials: {len(t)} of {cfg.search.num_samples} ({counts}); metric "
                     f"`{cfg.search.metric}` ({cfg.search.mode}), up to {cfg.train.epochs} epochs "
                     f"each, ASHA grace {cfg.search.grace_period}, reduction "
                     f"{cfg.search.reduction_factor}")
    if info.get("search_seconds") is not None:
        facts.append(f"search wall time {info['search_seconds']:.0f} s, total "
                     f"{info.get('total_seconds', 0):.0f} s")
    return facts


def render(exp_dir: Path, *, top: int = 10, efficiency: bool = True,
           remeasure: bool = False) -> Path:
    """Write ``report.md``, ``report.html`` and ``report/`` for an experiment; returns the HTML path."""
    exp_dir = Path(exp_dir)
    exp = load_experiment(exp_dir)
    out = exp_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.png"):
        stale.unlink()
    doc = Doc(exp_dir)
    doc.heading(f"kdtune report: `{exp.cfg.name}`", 1)
    doc.bullets(_facts(exp))

    doc.heading("Verdict")
    for p in verdict(exp, top):
        doc.para(p)

    doc.heading(f"Leaderboard (top {top}, ranked by each trial's best epoch)")
    board = leaderboard(exp, top)
    if len(board):
        atomic_write_csv(out / "leaderboard.csv", board)
        doc.table(board)
    else:
        doc.para("No trial has reported yet.")

    if exp.evaluation and _models(exp.evaluation):
        _model_sections(doc, exp, out)
    else:
        doc.heading("Held-out test results")
        doc.para("Test-split results are written when the search finishes (evaluation.json is "
                 "missing).")

    doc.heading("Efficiency (measured on this machine's CPU)")
    if not efficiency:
        doc.para("Skipped (--no-efficiency).")
    else:
        frame, note = efficiency_table(exp, out, remeasure)
        if frame is not None:
            threads = int(frame["threads"].iloc[0]) if "threads" in frame else 1
            doc.table(_efficiency_display(frame))
            doc.para(f"{note} Model forward pass only (texts tokenised beforehand) with "
                     f"`torch.inference_mode()` on {threads} CPU thread(s): latency is the median "
                     "over 30 test examples at batch 1 after warm-up; throughput is over 2 "
                     "batches of 32 after one warm-up batch. Size is the weight files on disk. On "
                     "a shared machine these numbers are noisy; compare ratios, not absolutes.")
        else:
            doc.para(note)

    _plot_sections(doc, exp, out, top)

    if exp.retrain:
        doc.heading("Re-training")
        for name, text in exp.retrain:
            doc.para(f"From `retrain/{name}`:")
            doc.markdown(text)

    atomic_write_text(exp_dir / "report.md", "\n".join(doc.md).rstrip() + "\n")
    html_path = exp_dir / "report.html"
    atomic_write_text(html_path, doc.render_html(f"kdtune report: {exp.cfg.name}"))
    log.info("report written: %s", html_path)
    return html_path


def _model_sections(doc: Doc, exp: Experiment, out: Path) -> None:
    ev = exp.evaluation or {}
    models = _models(ev)
    doc.heading("Per-class precision / recall / F1, held-out test split")
    pc = per_class_test_table(ev)
    atomic_write_csv(out / "per_class_test.csv", pc)
    doc.table(pc, signed=tuple(c for c in pc.columns if c.startswith("ΔF1")))
    missing = [m for m in MODEL_ORDER if m not in models]
    note = ("Columns: P precision, R recall. ΔF1 = distilled student's F1 minus the reference's. "
            "'macro avg' is the unweighted mean over classes.")
    if missing:
        note += f" Not evaluated (no such trial finished): {', '.join(missing)}."
    doc.para(note)

    doc.heading("F1 across all models, held-out test split")
    f1 = f1_all_models_table(ev)
    atomic_write_csv(out / "f1_all_models.csv", f1)
    doc.table(f1)

    model = "distilled" if "distilled" in models else ("baseline" if "baseline" in models else None)
    cm = confusion_table(ev, model) if model else None
    if cm is not None:
        trial = (ev.get("picks") or {}).get(model)
        doc.heading(f"Confusion matrix of the best {'distilled student' if model == 'distilled' else model}"
                    f" (trial `{trial}`), held-out test split")
        atomic_write_csv(out / "confusion_matrix.csv", cm)
        doc.table(cm)
        img = plot_confusion(cm, out / "confusion_matrix.png", f"{model} ({trial}) on test")
        doc.image(img, f"Confusion matrix of the {model} student on the test split")


def _plot_sections(doc: Doc, exp: Experiment, out: Path, top: int) -> None:
    doc.heading("Plots")
    if not len(exp.trials):
        doc.para("No trial has reported yet: nothing to plot.")
        return
    img = plot_alpha_temperature(exp, out / "alpha_temperature.png")
    if img:
        doc.heading("Val macro-F1 over alpha x temperature", 3)
        doc.image(img, "Best val macro-F1 per trial over alpha and temperature; marker = status")
    img = plot_learning_curves(exp, out / "learning_curves.png", min(top, 8))
    if img:
        doc.heading("Learning curves", 3)
        doc.image(img, "Val macro-F1 per epoch of the top trials (dashed: anchors)")
    best_id = ((exp.evaluation or {}).get("picks") or {}).get("best") or (
        exp.trials["trial_id"].iloc[0] if exp.score in exp.trials else None)
    img = plot_losses(exp, out / "losses_best_trial.png", best_id) if best_id else None
    if img:
        doc.heading("KD loss, CE loss and KD/CE ratio of the best trial", 3)
        doc.image(img, f"Training losses per epoch of trial {best_id}")
    doc.heading("Optuna: optimisation history and parameter importances", 3)
    optuna_plots = plot_optuna(exp, out)
    for key, alt in (("history", "Optuna optimisation history"),
                     ("importances", "Optuna parameter importances")):
        img, note = optuna_plots[key]
        if img:
            doc.image(img, alt)
        if note:
            doc.para(note)
    img, note = plot_epochs_granted(exp, out / "epochs_granted.png")
    if img:
        doc.heading("Epochs granted per trial (ASHA)", 3)
        doc.image(img, "Epochs each trial ran; the dashed line is the maximum")
        doc.para(note)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="kdtune.report", description=__doc__.split("\n")[0])
    p.add_argument("experiment", help="experiment folder, e.g. results/alpha_temp")
    p.add_argument("--top", type=int, default=10, help="trials in the leaderboard (default 10)")
    p.add_argument("--no-efficiency", action="store_true",
                   help="do not load the models to measure latency and throughput")
    p.add_argument("--remeasure", action="store_true",
                   help="measure efficiency again instead of reusing report/efficiency.csv")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if args.top < 1:
        print("kdtune.report: error: --top must be >= 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        html_path = render(Path(args.experiment), top=args.top, efficiency=not args.no_efficiency,
                           remeasure=args.remeasure)
    except ReportError as exc:
        print(f"kdtune.report: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    exp_dir = html_path.parent
    print(f"report: {exp_dir / 'report.md'}")
    print(f"        {html_path}")
    print(f"        {exp_dir / 'report'}/ (plots and tables)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
