"""The report's tables: leaderboard, per-class P / R / F1, F1 across models, confusion matrix."""

from __future__ import annotations

from typing import Any

import pandas as pd

from kdtune.report.experiment import Experiment, param_value
from kdtune.report.formatting import float_or_none, int_or_none

MODEL_ORDER = ("baseline", "teacher", "distilled")  # the seed's column order
PARAM_LABELS = {"alpha": "alpha", "temperature": "T", "learning_rate": "lr"}
SIZE_COLUMNS = ("latency_ms", "params")  # per-trial cost columns of a multi-objective search


def shown_params(exp: Experiment) -> list[str]:
    """alpha, temperature and learning rate (searched or fixed), then every other searched one."""
    return [*PARAM_LABELS, *[p for p in exp.searched if p not in PARAM_LABELS]]


def size_values(row: pd.Series) -> dict[str, Any]:
    """The trial's latency (ms) and parameter count, for the columns the trials table has."""
    out: dict[str, Any] = {}
    if "latency_ms" in row.index:
        out["latency_ms"] = float_or_none(row["latency_ms"])
    if "params" in row.index:
        out["params"] = int_or_none(row["params"])
    return out


def leaderboard(exp: Experiment, top: int) -> pd.DataFrame:
    """The top trials ranked by their best epoch (not their last)."""
    params = shown_params(exp)
    rows = []
    for rank, (_, r) in enumerate(exp.trials.head(top).iterrows(), start=1):
        status = r.get("status", "")
        error = str(r.get("error", "") or "").strip().splitlines()
        if status in ("errored", "diverged") and error:
            status = f"{status}: {error[0][:160]}"
        row: dict[str, Any] = {"rank": rank, "trial": r["trial_id"], "anchor": r.get("anchor", "")}
        row.update({p: param_value(exp, r, p) for p in params})
        row.update({"epochs run": int(r.get("epochs_run", 0) or 0),
                    "best epoch": int_or_none(r.get("best_epoch")),
                    "best val accuracy": float_or_none(r.get("best_val_accuracy")),
                    "best val macro-F1": float_or_none(r.get("best_val_macro_f1"))})
        row.update(size_values(r))
        row["status"] = status
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):  # keep whole numbers whole when some trial has none yet
        for col in ("best epoch", "params"):
            if col in frame:
                frame[col] = pd.Series([r[col] for r in rows], dtype=object)
    return frame


def models(evaluation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Evaluated models in the seed's order: baseline, teacher, distilled."""
    found = evaluation.get("models") or {}
    return {k: found[k] for k in MODEL_ORDER if found.get(k)}


def per_class_test_table(evaluation: dict[str, Any]) -> pd.DataFrame:
    """Per-class P / R / F1 on test for each model, with student-minus-reference F1 deltas."""
    evaluated = models(evaluation)
    rows = []
    for name in evaluation["label_names"]:
        row: dict[str, Any] = {"class": name}
        for model, ev in evaluated.items():
            pc = ev["test"]["per_class"][name]
            row.update({f"{model} P": pc["precision"], f"{model} R": pc["recall"],
                        f"{model} F1": pc["f1"]})
        rows.append(row)
    frame = pd.DataFrame(rows)
    macro: dict[str, Any] = {"class": "macro avg"}
    macro.update({c: float(frame[c].mean()) for c in frame.columns if c != "class"})
    frame = pd.concat([frame, pd.DataFrame([macro])], ignore_index=True)
    if "distilled" in evaluated:
        for ref in ("baseline", "teacher"):
            if ref in evaluated:
                frame[f"ΔF1 vs {ref}"] = frame["distilled F1"] - frame[f"{ref} F1"]
    return frame


def f1_all_models_table(evaluation: dict[str, Any], split: str = "test") -> pd.DataFrame:
    """Rows: each class, macro-F1 and accuracy; columns: each model's value on ``split``."""
    evaluated = models(evaluation)
    rows = []
    for name in evaluation["label_names"]:
        rows.append({"": f"F1 {name}", **{m: ev[split]["per_class"][name]["f1"]
                                          for m, ev in evaluated.items()}})
    rows.append({"": "macro-F1", **{m: ev[split]["macro_f1"] for m, ev in evaluated.items()}})
    rows.append({"": "accuracy", **{m: ev[split]["accuracy"] for m, ev in evaluated.items()}})
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
