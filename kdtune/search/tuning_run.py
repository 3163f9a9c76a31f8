"""A search as named steps: preflight, teachers, the Tuner, the confirm stage, the results.

:func:`run_plan` is what ``python -m kdtune.search`` and :func:`kdtune.run_search` call. Ray is
started (or joined) once and always shut down; every node is checked before the teacher stage;
the experiment folder is written only once the teacher stage has succeeded.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from kdtune.config import ExperimentConfig
from kdtune.errors import SearchInterrupted
from kdtune.record import record as R
from kdtune.record import schema as S
from kdtune.record.record import Record
from kdtune.search.plan import SearchPlan

log = logging.getLogger("kdtune.search")

EXIT_INTERRUPTED = 130


class DuplicateRecorder:
    """Writes the record object of a duplicate the searcher served (picklable with it)."""

    def __init__(self, root: str):
        self.root = root

    def __call__(self, entry: dict[str, Any]) -> None:
        Record(self.root).mark_finished({**entry, "kind": "search"})


@dataclass
class Outcome:
    """What a finished (or interrupted) run of the plan produced."""

    exit_code: int
    evaluation: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def trainable_for(plan: SearchPlan, prep: Any, fn: Any, kind: str) -> Any:
    """``fn`` with the trial data and, on a resume, the ``kind`` trials to report again."""
    from ray import tune

    s = plan.cfg.search
    return tune.with_resources(
        tune.with_parameters(fn, data=prep.trial_data(plan.cfg),
                             threads=max(1, int(s.cpus_per_trial)), metric=s.metric, mode=s.mode,
                             replay=ended_results(plan, kind), kind=kind),
        {"cpu": s.cpus_per_trial, "gpu": s.gpus_per_trial})


def ended_results(plan: SearchPlan, kind: str) -> dict[str, dict[str, Any]]:
    """On a resume, the last result of every ``kind`` trial the record holds as ended (its
    trainable reports it again if Ray's restored state still holds the trial unfinished)."""
    if not plan.resume:
        return {}
    return {tid: e["result"] for tid, e in plan.record.finished().items()
            if e.get("kind", "search") == kind and e.get("ray_status") == "terminated"
            and isinstance(e.get("result"), dict)}


def run_config(plan: SearchPlan, name: str, kind: str) -> Any:
    from ray import tune

    from kdtune.tracking import logger_callbacks
    from kdtune.tuning import RecordCallback

    s = plan.cfg.search
    storage_path, filesystem = plan.record.store.ray_storage()
    return tune.RunConfig(
        name=name, storage_path=storage_path, storage_filesystem=filesystem,
        # Every checkpoint is kept until the results stage prunes them all: with num_to_keep,
        # Ray deletes a trial's previous checkpoint as it registers the next, while the last
        # experiment snapshot may still point at it, so a kill in that window left a resume
        # that could not restore the trial (found by tests/test_resilience.py).
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None,
                                                checkpoint_score_attribute=S.CKPT_SCORE,
                                                checkpoint_score_order="max"),
        failure_config=tune.FailureConfig(max_failures=s.max_failures),
        callbacks=[RecordCallback(plan.record, kind, plan.cfg.train.epochs),
                   *logger_callbacks(plan, kind)])


def fit_run(plan: SearchPlan, name: str, make_tuner: Any, trainable: Any) -> Any:
    """Restore the Ray experiment ``name`` when resuming and it exists, else start it."""
    from ray import tune

    storage_path, filesystem = plan.record.store.ray_storage()
    path = f"{storage_path}/{name}"
    if plan.resume and tune.Tuner.can_restore(path, storage_filesystem=filesystem):
        log.info("resuming %s: finished trials are kept, unfinished ones continue", name)
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True,
                                   resume_errored=False, restart_errored=plan.restart_errored,
                                   storage_filesystem=filesystem)
    else:
        tuner = make_tuner()
    try:
        return tuner.fit()
    except RuntimeError as exc:
        if not killed_for_memory(exc):
            raise
        raise SearchInterrupted(plan.record.root, "Ray killed a trial: the node ran low on "
                                "memory; lower search.max_concurrent or train.batch_size "
                                "before resuming") from None


def killed_for_memory(exc: BaseException) -> bool:
    """Whether Ray's memory monitor killed a worker somewhere in ``exc``'s chain (Tune then
    stops the whole run with a RuntimeError wrapping it)."""
    from ray.exceptions import OutOfMemoryError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OutOfMemoryError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def tune_run_name(plan: SearchPlan) -> str:
    """``tune``; growing a finished search starts ``tune_2``, ``tune_3``, ... (a Ray run cannot
    take more samples once started); a resume continues the latest run."""
    runs = plan.record.tune_runs()
    if not runs:
        return R.TUNE
    return f"{R.TUNE}_{len(runs) + 1}" if plan.grow else runs[-1]


def run_search_stage(plan: SearchPlan, prep: Any) -> tuple[list[Any], float]:
    """The Tuner: a study per arm (routed), ASHA on progress unless the strategy says no;
    returns (results of every run, seconds)."""
    from ray import tune

    from kdtune.trainable import kd_trial
    from kdtune.tuning.storage import bind

    cfg, record = plan.cfg, plan.record
    record.fetch_optuna()
    bind(record.optuna_url())  # a restored searcher opens this driver's copy of the studies
    trainable = trainable_for(plan, prep, kd_trial, "search")
    name = tune_run_name(plan)

    def make() -> Any:
        # Built only for a new Ray run: a restored one brings its searcher back from its own
        # checkpoint, and building one here would enqueue the anchors into the studies again.
        from kdtune.cluster import concurrency
        from kdtune.tuning import ResumableLimiter

        router = _router(plan)
        scheduler = _scheduler(cfg)
        return tune.Tuner(trainable, run_config=run_config(plan, name, "search"),
                          tune_config=tune.TuneConfig(
                              search_alg=ResumableLimiter(router, max_concurrent=concurrency(cfg)),
                              scheduler=scheduler, num_samples=router.remaining(), reuse_actors=True))

    t0 = time.perf_counter()
    fit_run(plan, name, make, trainable)
    seconds = time.perf_counter() - t0
    record.sync_optuna()  # the studies as the search left them, beside URI results
    return load_results(plan, trainable, record.tune_runs()), seconds


def _scheduler(cfg: ExperimentConfig) -> Any:
    """ASHA on training progress when ``search.strategy`` stops trials early, else FIFO."""
    from ray.tune.schedulers import FIFOScheduler

    from kdtune.strategies import strategy
    from kdtune.tuning import RungASHA

    if not strategy(cfg.search.strategy).early_stopping:
        return FIFOScheduler()
    return RungASHA(cfg.protected_anchors(), metric=cfg.search.metric, mode=cfg.search.mode,
                    max_t=float(cfg.train.epochs), grace_period=cfg.grace_period,
                    reduction_factor=cfg.search.reduction_factor,
                    promotion=cfg.search.promotion)


def _router(plan: SearchPlan) -> Any:
    from kdtune.tuning import build_router
    from kdtune.tuning.storage import driver_storage

    previous = plan.finished() if plan.grow else {}
    router = build_router(plan.cfg, driver_storage(plan.record.optuna_url()), previous=previous)
    router.on_duplicate = DuplicateRecorder(plan.record.root)
    return router


def load_results(plan: SearchPlan, trainable: Any, runs: list[str]) -> list[Any]:
    """Every trial result of the given Ray runs (a grown search has several)."""
    from ray import tune

    storage_path, filesystem = plan.record.store.ray_storage()
    results = []
    for run in runs:
        path = f"{storage_path}/{run}"
        if tune.Tuner.can_restore(path, storage_filesystem=filesystem):
            grid = tune.Tuner.restore(path, trainable=trainable,
                                      storage_filesystem=filesystem).get_results()
            results += [r for r in grid]
    return results


def interrupted(plan: SearchPlan, wanted: int) -> bool:
    return len(plan.finished()) < wanted


def setup_environment() -> None:
    # Snapshot the experiment state every 2 s (it is small) so a kill loses little.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
