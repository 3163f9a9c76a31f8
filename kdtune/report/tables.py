"""The report's tables: leaderboard, per-class P / R / F1, F1 across models, confusion matrix."""

from __future__ import annotations

from typing import Any

import pandas as pd

from kdtune.formatting import float_or_none, int_or_none, is_missing
from kdtune.record import Experiment
from kdtune.record import schema as S
from kdtune.record.summary_page import MODEL_ORDER
from kdtune.record.trials import row_trial

PARAM_LABELS = {"alpha": "alpha", "temperature": "T", "learning_rate": "lr"}
METRIC_WORDS = {"val_macro_f1": "macro-F1", "val_accuracy": "accuracy"}
#: Leaderboard headers of each trial's best full-validation scores.
BEST_LABELS = {"val_accuracy": "best val accuracy", "val_macro_f1": "best val macro-F1"}
#: Leaderboard columns holding epochs of training (printed with 2 decimals).
PROGRESS_COLUMNS = {"progress": 2, "best progress": 2}


def metric_words(exp: Experiment) -> str:
    """The search metric in words: ``macro-F1`` or ``accuracy``."""
    return METRIC_WORDS.get(exp.cfg.search.metric, exp.cfg.search.metric)


def shown_params(exp: Experiment) -> list[str]:
    """alpha, temperature and learning rate (searched or fixed), then every other searched one."""
    return [*PARAM_LABELS, *[p for p in exp.searched if p not in PARAM_LABELS]]


def size_values(row: pd.Series) -> dict[str, Any]:
    """The trial's latency (ms) and parameter count, for the columns the trials table has."""
    out: dict[str, Any] = {}
    if S.LATENCY in row.index:
        out[S.LATENCY] = float_or_none(row[S.LATENCY])
    if S.PARAMS in row.index:
        out[S.PARAMS] = int_or_none(row[S.PARAMS])
    return out


def status_text(row: pd.Series) -> str:
    """The trial's status; a duplicate names its original, an error its first line."""
    status = str(row.get(S.STATUS, "") or "")
    if status == S.DUPLICATE:
        return f"duplicate of {row.get(S.DUPLICATE_OF, '') or '?'}"
    error = str(row.get(S.ERROR, "") or "").strip().splitlines()
    if status in (S.ERRORED, S.DIVERGED) and error:
        return f"{status}: {error[0][:160]}"
    return status


def leaderboard(exp: Experiment, top: int) -> pd.DataFrame:
    """The top trials ranked by their best full-validation score (not their last)."""
    rows = []
    for rank, (_, r) in enumerate(exp.trials.head(top).iterrows(), start=1):
        row: dict[str, Any] = {"rank": rank, "trial": r[S.TRIAL_ID], "arm": r.get(S.ARM, ""),
                               "anchor": r.get(S.ANCHOR, "")}
        row.update(param_cells(exp, r))
        row.update({"progress": float_or_none(r.get(S.PROGRESS)),
                    "best progress": float_or_none(r.get(S.BEST_PROGRESS))})
        row.update({label: float_or_none(r.get(S.best(metric)))
                    for metric, label in BEST_LABELS.items()})
        row.update(size_values(r))
        row["status"] = status_text(r)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if S.PARAMS in frame:  # whole numbers, also where one is missing
        frame[S.PARAMS] = pd.Series([r[S.PARAMS] for r in rows], dtype=object)
    return frame


def param_cells(exp: Experiment, row: pd.Series) -> dict[str, Any]:
    """The trial's value of each shown parameter; those it ignores are blank (``Trial.no_effect``:
    the KD-only ones at CE only, T and beta in self-training)."""
    unused = row_trial(row, exp.cfg).no_effect
    return {p: None if p in unused else _cell(exp.param_value(row, p)) for p in shown_params(exp)}


def _cell(v: Any) -> Any:
    return None if is_missing(v) else (str(list(v)) if isinstance(v, (list, tuple)) else v)


def models(evaluation: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Evaluated models in the seed's order: baseline, teacher, distilled."""
    found = (evaluation or {}).get("models") or {}
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
    rows = [{"": f"F1 {name}", **{m: ev[split]["per_class"][name]["f1"] for m, ev in evaluated.items()}}
            for name in evaluation["label_names"]]
    rows.append({"": "macro-F1", **{m: ev[split]["macro_f1"] for m, ev in evaluated.items()}})
    rows.append({"": "accuracy", **{m: ev[split]["accuracy"] for m, ev in evaluated.items()}})
    return pd.DataFrame(rows)


def confusion_table(evaluation: dict[str, Any], model: str = "distilled") -> pd.DataFrame | None:
    """Confusion matrix of ``model`` on test (rows: true class, columns: predicted)."""
    from kdtune.metrics import confusion

    ev = (evaluation.get("models") or {}).get(model)
    preds = (ev or {}).get("test", {}).get("predictions")
    labels = (evaluation.get("labels") or {}).get("test")
    if preds is None or labels is None:
        return None
    names = evaluation["label_names"]
    cm = confusion(labels, preds, len(names))
    frame = pd.DataFrame(cm, columns=[f"pred {n}" for n in names])
    frame.insert(0, "true \\ predicted", names)
    return frame
