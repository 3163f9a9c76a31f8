"""The confirm stage: the top-k completed trials of each arm, re-run with extra seeds.

One Ray run (``tune_confirm``, FIFO, resumable like the search) trains each candidate's exact
hparams at full length with seeds ``seed + 1 .. seed + confirm.seeds``; ``confirm.csv`` holds
each run's best full-validation score, and :func:`kdtune.record.picks.picks` ranks candidates
by their mean over the original run and these seeds.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd

from kdtune.record import record as R
from kdtune.record import schema as S
from kdtune.record.picks import confirm_candidates
from kdtune.record.trials import HPARAMS, from_ray
from kdtune.search.plan import SearchPlan

log = logging.getLogger("kdtune.search")

CONFIRM_OF = "confirm_of"


def confirm_runs(plan: SearchPlan) -> list[str]:
    """Ray folders of confirm stages: ``tune_confirm``, then one per grown search run."""
    return [n for n in plan.record.store.listdir() if n == R.TUNE_CONFIRM
            or n.startswith(f"{R.TUNE_CONFIRM}_")]


def _done(plan: SearchPlan) -> set[tuple[str, int]]:
    """(candidate, seed) of the confirm runs that finished (in any confirm stage)."""
    out = set()
    for entry in plan.record.finished().values():
        run = (entry.get("hparams") or {}).get("run") or {}
        if entry.get("kind") == "confirm" and run.get(CONFIRM_OF):
            out.add((str(run[CONFIRM_OF]), int(run["seed"])))
    return out


def confirm_configs(trials: pd.DataFrame, plan: SearchPlan) -> list[dict[str, Any]]:
    """One trial config per (candidate, extra seed) that no confirm stage has run yet."""
    import json

    cfg = plan.cfg
    out = []
    by_id = trials.set_index(S.TRIAL_ID)
    for tid, arm in confirm_candidates(trials, cfg):
        own = json.loads(by_id.loc[tid, HPARAMS])
        seed = int(own.get("seed", cfg.train.seed))
        out += [{S.ARM: arm, **own, "seed": seed + i, CONFIRM_OF: tid}
                for i in range(1, cfg.search.confirm.seeds + 1)]
    done = _done(plan)
    return [c for c in out if (c[CONFIRM_OF], c["seed"]) not in done]


def confirm_trial(config: dict[str, Any], **kwargs: Any) -> None:
    """A confirm run: a search trial of the candidate's hparams with another seed."""
    from kdtune.trainable import kd_trial

    kd_trial({k: v for k, v in config["run"].items() if k != CONFIRM_OF}, **kwargs)


def run_confirm_stage(plan: SearchPlan, prep: Any, trials: pd.DataFrame) -> tuple[list[Any], float]:
    """Run (or resume) the confirm runs; returns (their results, seconds)."""
    from ray import tune

    from kdtune.cluster import concurrency
    from kdtune.search.tuning_run import fit_run, load_results, run_config, trainable_for

    cfg = plan.cfg
    latest = plan.record.tune_runs()[-1]  # tune -> tune_confirm, tune_2 -> tune_confirm_2
    name = R.TUNE_CONFIRM + latest[len(R.TUNE):]
    trainable = trainable_for(plan, prep, confirm_trial, "confirm")
    configs = confirm_configs(trials, plan) if cfg.search.confirm.enabled else []
    if not configs:  # nothing (left) to confirm: the earlier stages' results
        return load_results(plan, trainable, confirm_runs(plan)), 0.0
    log.info("confirm stage: %d runs (top %d completed trials per arm x %d seeds)", len(configs),
             cfg.search.confirm.top_k, cfg.search.confirm.seeds)

    def make() -> Any:
        return tune.Tuner(trainable, param_space={"run": tune.grid_search(configs)},
                          run_config=run_config(plan, name, "confirm"),
                          tune_config=tune.TuneConfig(max_concurrent_trials=concurrency(cfg),
                                                      reuse_actors=True))

    t0 = time.perf_counter()
    fit_run(plan, name, make, trainable)
    return load_results(plan, trainable, confirm_runs(plan)), time.perf_counter() - t0


def confirm_table(results: list[Any], plan: SearchPlan) -> pd.DataFrame | None:
    """confirm.csv: one row per confirm run with its best full-validation scores."""
    from kdtune.record.trials import summarise

    if not results:
        return None
    rows = []
    for res in results:
        tr = from_ray(res)
        run = tr.config.get("run", {})
        tr.config = {k: v for k, v in run.items() if k != CONFIRM_OF}
        row = summarise(tr, plan.cfg, [])
        rows.append({S.TRIAL_ID: run.get(CONFIRM_OF), S.ARM: run.get(S.ARM), S.SEED: run.get("seed"),
                     S.RUN_ID: tr.trial_id, S.STATUS: row[S.STATUS],
                     **{k: row.get(k) for k in (*map(S.best, S.QUALITY), S.BEST_PROGRESS)},
                     HPARAMS: row[HPARAMS]})
    return pd.DataFrame(rows)


def confirm_pending(plan: SearchPlan, trials: pd.DataFrame) -> bool:
    """Whether confirm runs are still to finish (for the interrupted-search check)."""
    return plan.cfg.search.confirm.enabled and bool(confirm_configs(trials, plan))

