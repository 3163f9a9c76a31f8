"""``summary.md``: the run in one page (facts, arms, models on val and test, per-class tables,
the confirm stage's re-ranking, top trials)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from kdtune.config import ExperimentConfig
from kdtune.formatting import md_table
from kdtune.record import schema as S

MODEL_ORDER = ("baseline", "teacher", "distilled")  # the seed report's column order


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


def facts(cfg: ExperimentConfig, trials: pd.DataFrame, info: dict[str, Any]) -> list[str]:
    rows = info.get("rows", {})
    counts = ", ".join(f"{n} {s}" for s, n in trials[S.STATUS].value_counts().items())
    run = float(trials[S.PROGRESS].sum()) if S.PROGRESS in trials else 0.0
    arms = info.get("arms") or {}
    lines = [f"- data: `{info.get('source')}`: {rows.get('train')} train / {rows.get('val')} "
             f"validation / {rows.get('test')} held-out test rows (the search never saw test)",
             f"- teacher: `{cfg.teacher.finetuned or cfg.teacher.model}`, cache "
             f"{'hit' if info.get('teacher_cache_hit') else 'built'} (`{info.get('teacher_key')}`)",
             f"- student: {info.get('student')}",
             f"- trials: {len(trials)} ({counts}); trial-epochs run: {run:.2f} of "
             f"{len(trials) * cfg.train.epochs} without early stopping"]
    if arms:
        lines.append("- arms: " + ", ".join(f"{a} {n} trials" for a, n in arms.items())
                     + f" (baseline: {cfg.baseline_mode})")
    if info.get("search_seconds") is not None:
        lines.append(f"- search wall time: {info['search_seconds']:.0f} s; confirm "
                     f"{info.get('confirm_seconds', 0):.0f} s; total {info.get('total_seconds', 0):.0f} s")
    return lines


def _models_table(models: dict[str, Any], picks: dict[str, Any]) -> str:
    rows = []
    for name, ev in models.items():
        pick = picks.get(name) or {}
        row = [name, pick.get(S.TRIAL_ID, "") if isinstance(pick, dict) else "", ev.get("params")]
        for split in ("val", "test"):
            row += [ev[split]["accuracy"], ev[split]["macro_f1"]]
        rows.append(row)
    return md_table(["model", "trial", "params", "val accuracy", "val macro-F1", "test accuracy",
                     "test macro-F1"], rows)


def _ranking_lines(picks: dict[str, Any]) -> list[str]:
    ranking = pd.DataFrame(picks.get("ranking") or [])
    if not len(ranking):
        return []
    lines = ["## Confirm stage: single-seed vs multi-seed ranking", "",
             md_table(ranking[[S.TRIAL_ID, S.ARM, "single_seed", "mean", "std", "seeds",
                               "single_seed_rank", "multi_seed_rank"]]), ""]
    for which in ("distilled", "baseline"):
        if which in (picks.get("changed") or {}):
            changed = picks["changed"][which]
            lines.append(f"- {which}: {'changed to' if changed else 'kept'} trial "
                         f"`{(picks.get(which) or {}).get(S.TRIAL_ID)}` "
                         f"(single-seed best: `{picks['single_seed'].get(which)}`)")
    return [*lines, ""]


def render_summary(cfg: ExperimentConfig, trials: pd.DataFrame, evaluation: dict[str, Any],
                   info: dict[str, Any], picks: dict[str, Any]) -> str:
    models = {k: evaluation["models"][k] for k in MODEL_ORDER if evaluation["models"].get(k)}
    lines = [f"# kdtune search `{cfg.name}`", "", *facts(cfg, trials, info), "",
             f"## Models (picked by {picks.get('method')})", "", _models_table(models, picks), ""]
    if "baseline" not in models:
        lines += ["No CE-only baseline was evaluated (search.baseline: none, or no CE trial "
                  "finished).", ""]
    for split, title in (("test", "held-out test split"), ("val", "validation split")):
        lines += [f"## Per-class precision / recall / F1, {title}", "",
                  md_table(per_class_table(models, split, evaluation["label_names"])), ""]
    lines += _ranking_lines(picks)
    cols = [S.TRIAL_ID, S.ARM, S.ANCHOR, *[p.name for p in cfg.space], S.STATUS, S.PROGRESS,
            S.BEST_PROGRESS, S.best("val_accuracy"), S.best("val_macro_f1")]
    cols = [c for c in cols if c in trials]
    lines += [f"## Top trials (ranked by their best {cfg.search.metric})", "",
              md_table(trials[cols].head(10)), ""]
    if S.best(cfg.search.metric) not in trials:
        lines += ["No trial reported a metric yet.", ""]
    return "\n".join(lines)


def test_metrics(evaluation: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """(accuracy, macro-F1) on test per evaluated model, for CLI output."""
    return {k: (v["test"]["accuracy"], v["test"]["macro_f1"])
            for k, v in evaluation["models"].items() if v is not None}

