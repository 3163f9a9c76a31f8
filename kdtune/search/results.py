"""The results stage of a search: tables, picks, evaluation of the chosen students, summary.

Writes into the record: ``trials.csv``, ``history.csv``, ``confirm.csv``, ``pareto.csv``,
``picks.json``, ``evaluation.json`` (teacher, baseline and distilled student on validation
and held-out test, with predictions), ``summary.md`` and ``models/{baseline,distilled}/``; then
deletes every trial checkpoint (the chosen students are exported).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from kdtune.record import record as R
from kdtune.record import schema as S
from kdtune.record.picks import BASELINE, DISTILLED, pareto_table, picks
from kdtune.record.summary_page import render_summary
from kdtune.record.trials import from_ray, trial_tables
from kdtune.search.plan import SearchPlan

log = logging.getLogger("kdtune.search")


def tables(plan: SearchPlan, results: list[Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """trials.csv and history.csv of every run of the search (duplicates included)."""
    duplicates = [e for e in plan.record.finished().values() if e.get(S.STATUS) == S.DUPLICATE]
    trials, history = trial_tables([from_ray(r) for r in results], plan.cfg, duplicates)
    plan.record.write_csv(R.TRIALS, trials)
    plan.record.write_csv(R.HISTORY, history)
    return trials, history


def _teacher_entry(prep: Any) -> dict[str, Any]:
    metrics = prep.teacher.metrics
    # the experiment's own copy of the teacher, relative to its root (kdtune.teacher.keep_teacher)
    return {"params": metrics.get("params"), "dir": f"{R.TEACHERS}/{prep.teacher.key}/model",
            **{s: {**metrics[s], "predictions": prep.teacher.logits[s].argmax(-1).tolist()}
               for s in ("val", "test")}}


def _student_entry(plan: SearchPlan, prep: Any, which: str, pick: dict[str, Any] | None,
                   by_id: dict[str, Any]) -> dict[str, Any] | None:
    """Evaluate (and export) the picked trial's best checkpoint, or its exported copy."""
    from kdtune.devices import best_device
    from kdtune.score_picks import (
        best_checkpoint,
        evaluate_model,
        export_model,
        exported_trial,
        load_exported,
        load_trial_model,
    )

    if pick is None:
        return None
    tid, record = pick[S.TRIAL_ID], plan.record
    res = by_id.get(tid)
    ckpt = best_checkpoint(res) if res is not None else None
    data = prep.trial_data(plan.cfg)
    own = {k: v for k, v in pick["hparams"].items()}
    if ckpt is not None:
        model = load_trial_model(own, data, ckpt)
    elif exported_trial(record, which) == tid:  # checkpoints pruned by an earlier results stage
        model = load_exported(record, which)
    else:
        log.warning("no checkpoint of trial %s is left to evaluate", tid)
        return None
    device = best_device()
    entry = evaluate_model(model, prep.encoded, prep.label_names, plan.cfg.train.eval_batch_size,
                           device, plan.cfg.train.precision)
    export_model(record, f"{R.MODELS}/{which}", model, prep.student_tokenizer, tid)
    entry["dir"] = f"{R.MODELS}/{which}"  # relative to the experiment: the record moves whole
    entry[S.TRIAL_ID] = tid
    return entry


def write_results(plan: SearchPlan, prep: Any, results: list[Any], confirm: pd.DataFrame | None,
                  info: dict[str, Any]) -> dict[str, Any]:
    """Every results file of a finished search; returns ``evaluation.json``'s content."""
    from kdtune.score_picks import prune_checkpoints

    cfg, record = plan.cfg, plan.record
    trials, _ = tables(plan, results)
    if confirm is not None:
        record.write_csv(R.CONFIRM, confirm)
    chosen = picks(trials, cfg, confirm)
    front = pareto_table(trials, cfg)
    if front is not None:
        record.write_csv(R.PARETO, front)
    by_id = {from_ray(r).trial_id: r for r in results}
    models = {"teacher": _teacher_entry(prep)}
    for which in (BASELINE, DISTILLED):
        models[which] = _student_entry(plan, prep, which, chosen.get(which), by_id)
    evaluation = {"picks": {w: (chosen.get(w) or {}).get(S.TRIAL_ID) for w in (BASELINE, DISTILLED)}
                  | {"best": chosen["best"]}, "models": models,
                  "labels": {s: prep.encoded[s].labels.tolist() for s in ("val", "test")},
                  "label_names": prep.label_names}
    record.write_json(R.PICKS, chosen)
    record.write_json(R.EVALUATION, evaluation)
    record.write_text(R.SUMMARY, render_summary(cfg, trials, evaluation, info, chosen))
    freed = prune_checkpoints(results)
    log.info("pruned trial checkpoints: %.0f MB freed", freed / 1e6)
    return evaluation

