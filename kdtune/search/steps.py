"""``run_plan``: a search from its plan to its results, as short named steps."""

from __future__ import annotations

import logging
import time
from typing import Any

from kdtune.logs import kept_log
from kdtune.record import record as R
from kdtune.search.plan import SearchPlan
from kdtune.search.tuning_run import (
    EXIT_INTERRUPTED,
    Outcome,
    interrupted,
    run_search_stage,
    setup_environment,
)

log = logging.getLogger("kdtune.search")


def already_finished(plan: SearchPlan) -> bool:
    return (plan.resume and not plan.grow and not plan.restart_errored
            and len(plan.finished()) >= plan.cfg.search.num_samples
            and plan.record.store.is_file(R.SUMMARY))


def prepare_stages(plan: SearchPlan) -> Any:
    """Nodes checked, then data, tokens, teachers and the student init (the record is written
    only once these succeed)."""
    import torch

    from kdtune.cluster import preflight, teacher_builder
    from kdtune.devices import best_device
    from kdtune.stages import prepare

    if plan.overwrite:
        plan.record.store.delete("")
    preflight(plan.cfg, plan.record)
    builder = teacher_builder(torch.cuda.is_available())
    device = torch.device("cuda") if builder is not None else best_device()
    from kdtune.teacher import keep_teacher

    existing = plan.record if plan.record.exists() else None  # a resume: its own teachers
    prep = prepare(plan.cfg, device=device, builder=builder, record=existing)
    if not plan.resume or plan.grow:
        plan.record.create(plan.cfg)  # a grown search records its new num_samples
    for teacher in prep.teachers:  # the experiment carries what its trials distil from
        keep_teacher(plan.record, teacher)
    return prep


def _info(plan: SearchPlan, prep: Any) -> dict[str, Any]:
    info = {**(plan.record.read_json(R.RUN_INFO) or {}), **prep.info(),
            "arms": {a.name: a.num_samples for a in plan.cfg.arms()},
            "baseline": plan.cfg.baseline_mode}
    plan.record.write_json(R.RUN_INFO, info)
    return info


def _short(plan: SearchPlan, results: list[Any]) -> int:
    """Trials missing from num_samples when every trial Ray knows has ended (0 otherwise: a
    Ctrl-C leaves trials unfinished, and that is an interruption, not a short run)."""
    from kdtune.record.trials import from_ray

    if not plan.resume:
        return 0
    done = plan.finished()
    if any(from_ray(r).trial_id not in done for r in results):
        return 0
    return max(0, plan.cfg.search.num_samples - len(done))


def settle_studies(plan: SearchPlan, trials: Any) -> None:
    """Once every trial of the search has ended, no study trial is left RUNNING: one a kill
    cut off from its study copy is told its outcome from ``trials``, one never trained FAIL
    (kdtune.tuning.settle)."""
    from kdtune.tuning.settle import settle_studies as settle

    s = plan.cfg.search
    settle(plan.record.optuna_url(), trials, list(s.objectives or [s.metric]))
    plan.record.sync_optuna()


def _search_and_confirm(plan: SearchPlan, prep: Any, info: dict[str, Any]) -> Outcome:
    from kdtune.score_picks import prune_checkpoints
    from kdtune.search.confirm import confirm_pending, confirm_table, run_confirm_stage
    from kdtune.search.results import tables, write_results

    results, info["search_seconds"] = run_search_stage(plan, prep)
    short = _short(plan, results)
    if short:  # a resumed run ended with every trial done but too few of them: add the rest
        log.warning("the resumed run ended %d trial(s) short of search.num_samples (the "
                    "searcher's saved state was ahead of Ray's when the driver died): a new run "
                    "adds them", short)
        plan.grow = True  # a new Ray run seeded with every finished trial, as growing a search
        results, more = run_search_stage(plan, prep)
        info["search_seconds"] += more
    if interrupted(plan, plan.cfg.search.num_samples):
        return Outcome(EXIT_INTERRUPTED, info=info)
    trials, _ = tables(plan, results)
    settle_studies(plan, trials)
    confirm_results, info["confirm_seconds"] = run_confirm_stage(plan, prep, trials)
    if confirm_pending(plan, trials):
        return Outcome(EXIT_INTERRUPTED, info=info)
    teacher_s = (prep.teacher.metrics.get("seconds") or 0.0) if not prep.teacher.cache_hit else 0.0
    info["confirm_ratio"] = ((info["confirm_seconds"] + teacher_s * (len(
        plan.cfg.teacher.learning_rates) > 1)) / info["search_seconds"]
                             if info["search_seconds"] else None)
    info["total_seconds"] = time.perf_counter() - info["started"]
    evaluation = write_results(plan, prep, results, confirm_table(confirm_results, plan), info)
    prune_checkpoints(confirm_results)
    return Outcome(0 if evaluation["picks"].get("best") else 1, evaluation, info)


def run_plan(plan: SearchPlan) -> Outcome:
    """Run (or resume, or grow) the search of ``plan``; bad input raises ConfigError early."""
    from kdtune.cluster import ray_session

    setup_environment()
    if already_finished(plan):
        print(f"{plan.record.root}: all {plan.cfg.search.num_samples} trials had finished; nothing "
              "to resume (--restart-errored runs errored trials again; --num-samples N grows it)")
        return Outcome(0, plan.record.read_json(R.EVALUATION))
    t0 = time.perf_counter()
    existed = not plan.record.is_empty()
    try:
        with kept_log(plan.record, R.DRIVER_LOG), ray_session(plan.address):
            prep = prepare_stages(plan)
            info = {**_info(plan, prep), "started": t0}
            outcome = _search_and_confirm(plan, prep, info)
    finally:
        if not existed and not plan.record.store.remote and not plan.record.exists():
            plan.record.store.delete("")  # a failed start leaves no empty experiment behind
    outcome.info["total_seconds"] = time.perf_counter() - t0
    outcome.info.pop("started", None)
    plan.record.write_json(R.RUN_INFO, outcome.info)
    if outcome.exit_code != EXIT_INTERRUPTED and plan.report:
        render_report(plan)
    if outcome.exit_code != EXIT_INTERRUPTED and "mlflow" in plan.cfg.search.loggers:
        from kdtune.tracking import log_parent_run

        outcome.info["mlflow_parent_run"] = log_parent_run(plan)
    return outcome


def render_report(plan: SearchPlan) -> None:
    from kdtune import report

    path = report.render_after_results(plan.record.root)
    if path is not None:
        print(f"report: {path}")
