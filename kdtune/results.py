"""Turn a finished (or interrupted) search into the files a practitioner reviews.

Writes ``trials.csv`` (one row per trial), ``history.csv`` (one row per trial-epoch),
``best_trial.json``, ``evaluation.json`` (teacher, CE-only baseline and best distilled student
on the validation and held-out test splits, with predictions) and ``summary.md``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from kdtune.config import ExperimentConfig, anchor_label
from kdtune.data import Encoded
from kdtune.files import atomic_write_csv, atomic_write_json, atomic_write_text
from kdtune.models import count_parameters, load_weights
from kdtune.pareto import choose, pareto_mask
from kdtune.pipeline import Prepared
from kdtune.recipe import TrialData, build_model
from kdtune.status import (
    OK_STATUSES,
    STATUS_COMPLETED,
    STATUS_DIVERGED,
    STATUS_ERRORED,
    STATUS_STOPPED,
)
from kdtune.trainer import classification_metrics, predict_logits

log = logging.getLogger(__name__)




def _last_line(text: Any) -> str:
    """The last non-empty line: for a traceback, the exception itself."""
    text = str(text or "").strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def trial_tables(results, cfg: ExperimentConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, history) frames from a Ray ``ResultGrid``, ranked by each trial's best epoch."""
    metric, mode = cfg.search.metric, cfg.search.mode
    anchors = cfg.anchor_points() if cfg.search.anchors else []
    searched = [p.name for p in cfg.space]
    rows, histories = [], []
    for res in results:
        hist = res.metrics_dataframe if res.metrics_dataframe is not None else pd.DataFrame()
        trial_id = (res.metrics or {}).get("trial_id") or Path(res.path).name
        config = res.config or {}
        row: dict[str, Any] = {"trial_id": trial_id, "anchor": anchor_label(config, anchors)}
        row.update({k: config.get(k) for k in searched})
        epochs_run = int(hist["epoch"].max()) if "epoch" in hist and len(hist) else 0
        diverged = bool(hist.get("diverged", pd.Series(dtype=bool)).fillna(False).any())
        if res.error is not None:
            status, error = STATUS_ERRORED, _last_line(res.error)
        elif diverged:
            status = STATUS_DIVERGED
            error = _last_line(hist["error"].dropna().iloc[-1]) if "error" in hist else ""
        elif epochs_run >= cfg.train.epochs:
            status, error = STATUS_COMPLETED, ""
        else:
            status, error = STATUS_STOPPED, ""
        row.update(status=status, epochs_run=epochs_run, error=error)
        good = hist[~hist.get("diverged", False).astype(bool)] if len(hist) else hist
        if metric in good and good[metric].notna().any():
            best_i = good[metric].idxmax() if mode == "max" else good[metric].idxmin()
            row.update({f"best_{metric}": float(good.loc[best_i, metric]),
                        "best_epoch": int(good.loc[best_i, "epoch"]),
                        "best_val_accuracy": float(good.loc[best_i, "val_accuracy"]),
                        "best_val_macro_f1": float(good.loc[best_i, "val_macro_f1"]),
                        "last_val_accuracy": float(good["val_accuracy"].iloc[-1]),
                        "last_val_macro_f1": float(good["val_macro_f1"].iloc[-1])})
        for extra in ("latency_ms", "params"):  # constant per trial (the architecture's)
            if extra in hist and hist[extra].notna().any():
                row[extra] = float(hist[extra].dropna().iloc[-1])
        row["path"] = str(res.path)
        rows.append(row)
        if len(hist):
            keep = [c for c in hist.columns if not c.startswith(("config/", "checkpoint_dir"))]
            h = hist[keep].copy()
            if "trial_id" not in h:
                h.insert(0, "trial_id", trial_id)
            histories.append(h)
    trials = pd.DataFrame(rows)
    score = f"best_{metric}"
    if score in trials:
        trials = trials.sort_values(score, ascending=(mode == "min"), na_position="last")
    return trials.reset_index(drop=True), (pd.concat(histories, ignore_index=True)
                                           if histories else pd.DataFrame())


def _best_checkpoint(res, metric: str, mode: str):
    ranked = [(c, m) for c, m in (res.best_checkpoints or []) if m.get(metric) is not None
              and not m.get("diverged")]
    if not ranked:
        return None
    pick = max if mode == "max" else min
    return pick(ranked, key=lambda cm: cm[1][metric])[0]


TRIAL_MARK = "kdtune_trial.json"  # in an exported model folder: which trial it came from


def evaluate_trial(res, cfg: ExperimentConfig, data: TrialData, encoded: dict[str, Encoded],
                   label_names: list[str], exported: Path | None = None
                   ) -> tuple[dict[str, Any], torch.nn.Module] | None:
    """Validation and test metrics (and test predictions) of a trial's best checkpoint.

    After a finished search the checkpoints are pruned; a resumed one (``--restart-errored``)
    then reads the same weights from the exported folder ``exported`` if it holds this trial.
    """
    ckpt = _best_checkpoint(res, cfg.search.metric, cfg.search.mode)
    trial_id = (res.metrics or {}).get("trial_id")
    mark = exported / TRIAL_MARK if exported is not None else None
    if ckpt is not None and Path(ckpt.path).is_dir():
        source, path = ckpt.path, Path(ckpt.path)
    elif mark is not None and mark.is_file() and \
            json.loads(mark.read_text()).get("trial_id") == trial_id:
        source, path = str(exported), exported
    else:
        return None
    model = build_model(data, {**data.fixed, **(res.config or {})})
    load_weights(model, path)
    out: dict[str, Any] = {"params": count_parameters(model), "checkpoint": source}
    for split in ("val", "test"):
        logits = predict_logits(model, encoded[split], cfg.train.eval_batch_size)
        preds = logits.argmax(-1)
        out[split] = classification_metrics(encoded[split].labels, preds, label_names)
        out[split]["predictions"] = preds.tolist()
    return out, model


def prune_checkpoints(results, keep: set[str]) -> int:
    """Delete the checkpoints of trials not in ``keep``; returns the bytes freed.

    Finished trials never need their weights again (an interrupted trial restarts from epoch
    1) and the chosen students are exported to ``models/``, so a finished search keeps ~60 MB
    per exported model instead of ~60 MB per trial.
    """
    freed = 0
    for res in results:
        tid = (res.metrics or {}).get("trial_id") or Path(res.path).name
        if tid in keep:
            continue
        for ckpt in Path(res.path).glob("checkpoint_*"):
            freed += sum(f.stat().st_size for f in ckpt.rglob("*") if f.is_file())
            shutil.rmtree(ckpt, ignore_errors=True)
    return freed


def pick_trials(trials: pd.DataFrame, cfg: ExperimentConfig) -> dict[str, str | None]:
    """Trial ids of the overall best, the best distilled (alpha < 1) and the best CE-only one."""
    score = f"best_{cfg.search.metric}"
    ok = trials[trials["status"].isin([STATUS_COMPLETED, STATUS_STOPPED])]
    if score in ok:
        ok = ok[ok[score].notna()]
    else:
        ok = ok.iloc[0:0]
    alpha = ok["alpha"] if "alpha" in ok else pd.Series(cfg.train.alpha, index=ok.index)
    distilled, baseline = ok[alpha < 1.0], ok[alpha >= 1.0]
    picks = {"best": ok["trial_id"].iloc[0] if len(ok) else None,
             "distilled": distilled["trial_id"].iloc[0] if len(distilled) else None,
             "baseline": baseline["trial_id"].iloc[0] if len(baseline) else None}
    cols = objective_columns(cfg)
    if cols and len(ok) and all(c in ok for c in cols):
        # Multi-objective: the chosen point is the cheapest on the Pareto front whose quality
        # is within search.f1_tolerance of the front's best.
        front = ok[pareto_mask(ok, cols, cfg.search.modes)]
        chosen = front.loc[choose(front, score, cfg.search.mode, cols[1], cfg.search.f1_tolerance)]
        picks["best"] = chosen["trial_id"]
        if float(chosen.get("alpha", cfg.train.alpha)) < 1.0:
            picks["distilled"] = chosen["trial_id"]
    return picks


def objective_columns(cfg: ExperimentConfig) -> list[str]:
    """trials.csv columns of ``search.objectives``: quality at each trial's best epoch."""
    return [f"best_{o}" if o.startswith("val_") else o for o in (cfg.search.objectives or [])]


def pareto_table(trials: pd.DataFrame, cfg: ExperimentConfig) -> pd.DataFrame | None:
    """The trials on the Pareto front of ``search.objectives`` (best epoch's quality)."""
    cols = objective_columns(cfg)
    score = f"best_{cfg.search.metric}"
    ok = trials[trials["status"].isin(OK_STATUSES)]
    if not cols or not all(c in ok for c in cols):
        return None
    ok = ok[ok[score].notna()]
    return ok[pareto_mask(ok, cols, cfg.search.modes)].sort_values(cols[1])


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}"
    return str(v)


def md_table(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in frame.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def per_class_table(models: dict[str, dict[str, Any]], split: str,
                    label_names: list[str]) -> pd.DataFrame:
    """The seed's table: per class precision / recall / F1 for each model on one split."""
    rows = []
    for name in label_names:
        row: dict[str, Any] = {"class": name}
        for model, ev in models.items():
            pc = ev[split]["per_class"][name]
            row.update({f"{model} P": pc["precision"], f"{model} R": pc["recall"],
                        f"{model} F1": pc["f1"]})
        rows.append(row)
    return pd.DataFrame(rows)


def write_summary(exp_dir: Path, cfg: ExperimentConfig, trials: pd.DataFrame,
                  evaluation: dict[str, Any], info: dict[str, Any]) -> None:
    """``summary.md``: run facts, overall and per-class tables (val and test), top trials."""
    label_names = info["label_names"]
    models = {k: v for k, v in evaluation["models"].items() if v is not None}
    lines = [f"# kdtune search `{cfg.name}`", ""]
    counts = ", ".join(f"{n} {s}" for s, n in trials["status"].value_counts().items())
    lines += [f"- data: `{info['source']}`: {info['rows']['train']} train / {info['rows']['val']} "
              f"validation / {info['rows']['test']} held-out test rows (the search never saw test)",
              f"- teacher: `{cfg.teacher.finetuned or cfg.teacher.model}`, cache "
              f"{'hit' if info['teacher_cache_hit'] else 'built'} (`{info['teacher_key']}`)",
              f"- student: {info['student']}",
              f"- trials: {len(trials)} ({counts}); "
              f"trial-epochs run: {int(trials['epochs_run'].sum())} of "
              f"{len(trials) * cfg.train.epochs} without early stopping",
              f"- search wall time: {info['search_seconds']:.0f} s; total {info['total_seconds']:.0f} s",
              ""]
    picks = evaluation["picks"]
    lines += ["## Models", ""]
    overview = []
    for name, ev in models.items():
        row = {"model": name, "trial": picks.get(name, "") or "", "params": ev.get("params")}
        for split in ("val", "test"):
            row[f"{split} accuracy"] = ev[split]["accuracy"]
            row[f"{split} macro-F1"] = ev[split]["macro_f1"]
        overview.append(row)
    lines += [md_table(pd.DataFrame(overview)), ""]
    if "baseline" not in models:
        lines += ["No CE-only (alpha = 1) trial finished, so there is no baseline column.", ""]
    for split, title in (("test", "held-out test split"), ("val", "validation split")):
        lines += [f"## Per-class precision / recall / F1, {title}", "",
                  md_table(per_class_table(models, split, label_names)), ""]
    score = f"best_{cfg.search.metric}"
    cols = ["trial_id", "anchor", *[p.name for p in cfg.space], "status", "epochs_run",
            "best_epoch", "best_val_accuracy", "best_val_macro_f1"]
    cols = [c for c in cols if c in trials]
    lines += [f"## Top trials (ranked by their best epoch's {cfg.search.metric})", "",
              md_table(trials[cols].head(10)), ""]
    if score not in trials:
        lines += ["No trial reported a metric yet.", ""]
    atomic_write_text(exp_dir / "summary.md", "\n".join(lines))


def write_results(exp_dir: Path, results, cfg: ExperimentConfig, prep: Prepared,
                  info: dict[str, Any]) -> dict[str, Any]:
    """Write every results file of a search and export the chosen students; returns evaluation."""
    trials, history = trial_tables(results, cfg)
    atomic_write_csv(exp_dir / "trials.csv", trials)
    atomic_write_csv(exp_dir / "history.csv", history)
    picks = pick_trials(trials, cfg)
    data = prep.trial_data(cfg)
    front = pareto_table(trials, cfg)
    if front is not None:
        atomic_write_csv(exp_dir / "pareto.csv", front)
    by_id = {(res.metrics or {}).get("trial_id") or Path(res.path).name: res for res in results}
    label_names = prep.label_names
    teacher_metrics = prep.teacher.metrics
    models: dict[str, Any] = {"teacher": {
        "params": teacher_metrics.get("params"), "dir": str(prep.teacher.model_dir.resolve()),
        **{s: {**teacher_metrics[s],
               "predictions": prep.teacher.logits[s].argmax(-1).tolist()} for s in ("val", "test")}}}
    for name in ("baseline", "distilled"):
        tid = picks[name]
        folder = exp_dir / "models" / name
        evaluated = (evaluate_trial(by_id[tid], cfg, data, prep.encoded, label_names, folder)
                     if tid is not None else None)
        if evaluated is None:
            models[name] = None
            continue
        models[name], model = evaluated
        tmp = folder.with_name(f".{name}.tmp")  # write beside, then swap: never half a model
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        prep.student_tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / TRIAL_MARK, {"trial_id": tid})
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        models[name]["dir"] = str(folder.resolve())
    evaluation = {"picks": picks, "models": models, "labels": {
        s: prep.encoded[s].labels.tolist() for s in ("val", "test")}, "label_names": label_names}
    atomic_write_json(exp_dir / "evaluation.json", evaluation)
    if picks["best"] is not None:
        best = trials[trials["trial_id"] == picks["best"]].iloc[0].to_dict()
        best_config = {**cfg.fixed, **{p.name: best[p.name] for p in cfg.space}}
        atomic_write_json(exp_dir / "best_trial.json", {
            "trial_id": picks["best"], "metric": cfg.search.metric, "mode": cfg.search.mode,
            "score": best.get(f"best_{cfg.search.metric}"), "best_epoch": best.get("best_epoch"),
            "status": best["status"], "anchor": best["anchor"], "config": best_config})
    write_summary(exp_dir, cfg, trials, evaluation, info)
    freed = prune_checkpoints(results, keep=set())  # the chosen students are exported above
    log.info("pruned checkpoints of other trials: %.0f MB freed", freed / 1e6)
    return evaluation


def test_metrics_table(evaluation: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """(accuracy, macro-F1) on test per evaluated model, for CLI output."""
    return {k: (v["test"]["accuracy"], v["test"]["macro_f1"])
            for k, v in evaluation["models"].items() if v is not None}


