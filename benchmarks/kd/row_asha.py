"""Row 3: an ASHA search against the same search run with every trial to completion.

Both searches are ``python -m kdtune.search`` (``kdtune.search.main``) on the bench config:
the same space, arms (``search.baseline`` as the space sets it: a tuned CE arm, or the fixed
CE anchor), anchors, TPE seed, training seeds and ``max_concurrent``. The run-to-completion
search only sets ``search.grace_period`` to ``train.epochs``: ASHA's one rung is then
``max_t``, where every trial ends anyway, so no trial is stopped. The confirm stage is off in
both (it is not part of what is compared). Measured, from each search's record
(``kdtune.record.load_experiment``):

* 3a compute: trial-epochs, the sum of trials.csv's ``progress`` (epochs each trial trained,
  fractional with rungs inside epochs): ASHA <= 0.4x;
* 3b quality: the best trial's ``best_val_macro_f1``: ASHA no more than 0.5 points lower;
* 3c wall time: run_info.json's ``search_seconds`` (the Tuner stage, after the shared data and
  teacher preparation): ASHA <= 0.5x.

TPE sees a stopped trial's last score as its result, so once ASHA stops one the two searches'
later suggestions may differ: the comparison is of the two procedures, not of one trial list.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.common import Row, at_most, say
from benchmarks.kd.context import SEARCH_OVERRIDES, Bench
from kdtune.record import schema as S

KINDS = ("asha", "complete")
#: The record files kept (copied to the results folder); the rest (checkpoints, Ray state) goes.
KEEP = ("config.yaml", "trials.csv", "history.csv", "run_info.json", "summary.md")


@dataclass
class Search:
    kind: str
    name: str
    folder: Path  # the kept record files, under the results folder
    trials: pd.DataFrame
    history: pd.DataFrame
    info: dict[str, Any]
    cfg: Any  # the search's ExperimentConfig
    wall_seconds: float  # around kdtune.search.main, preparation and results included
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def trial_epochs(self) -> float:
        return float(self.trials[S.PROGRESS].sum())

    @property
    def best_f1(self) -> float:
        return float(self.trials[S.best("val_macro_f1")].max())

    @property
    def search_seconds(self) -> float:
        return float(self.info["search_seconds"])


def search_overrides(bench: Bench, kind: str) -> dict[str, Any]:
    extra = dict(SEARCH_OVERRIDES)
    if kind == "complete":
        extra["search.grace_period"] = float(bench.cfg.train.epochs)
    return extra


def run_search(bench: Bench, kind: str) -> Search:
    from kdtune import search
    from kdtune.record import load_experiment

    name = f"bench_{bench.mode.name}_{kind}"
    space = bench.write_space(name, search_overrides(bench, kind))
    results = bench.workdir / "searches"
    say("bench_kd", f"search {name}: python -m kdtune.search --space {space}")
    t0 = time.perf_counter()
    rc = search.main(["--space", str(space), "--results-dir", str(results), "--name", name,
                      "--no-report", "--overwrite"])
    wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"kdtune.search exited with {rc} for {space}")
    exp = load_experiment(results / name)
    keep = bench.out / f"bench_kd_{bench.mode.name}_searches" / kind
    if keep.exists():
        shutil.rmtree(keep)
    keep.mkdir(parents=True)
    for f in KEEP:
        if (exp.dir / f).is_file():
            shutil.copy2(exp.dir / f, keep / f)
    shutil.rmtree(results / name, ignore_errors=True)  # checkpoints: up to 60 MB per trial
    return Search(kind, name, keep, exp.trials, exp.history, exp.info, exp.cfg, wall)


def run_searches(bench: Bench, kinds: tuple[str, ...] = KINDS) -> dict[str, Search]:
    return {k: run_search(bench, k) for k in kinds}


def rungs(grace: float, epochs: float, rf: int) -> list[float]:
    out, t = [], grace
    while t < epochs - 1e-9:
        out.append(round(t, 6))
        t *= rf
    return out


def ideal_share(grace: float, epochs: float, rf: int, trials: int, protected: int) -> float:
    """Trial-epochs of ideal synchronous successive halving over those of full runs.

    A trial trains past the k-th rung with probability ``rf ** -k``; protected anchors run
    every epoch. Asynchronous ASHA with few trials promotes more, so it stays above this.
    """
    marks = [0.0, *rungs(grace, epochs, rf), float(epochs)]
    share = sum((marks[k + 1] - marks[k]) * rf ** -k for k in range(len(marks) - 1)) / epochs
    protected = min(protected, trials)
    return (protected + (trials - protected) * share) / trials if trials else math.nan


def describe(s: Search) -> dict[str, Any]:
    counts = s.trials[S.STATUS].value_counts().to_dict()
    return {"name": s.name, "folder": str(s.folder), "trial_epochs": s.trial_epochs,
            "best_val_macro_f1": s.best_f1, "search_seconds": s.search_seconds,
            "wall_seconds": s.wall_seconds, "status_counts": counts,
            "grace_period": s.cfg.grace_period,
            "reduction_factor": s.cfg.search.reduction_factor,
            "trials": s.trials.drop(columns=[S.PATH, "hparams"], errors="ignore").to_dict(orient="records")}


def rows(searches: dict[str, Search]) -> list[Row]:
    a, c = searches["asha"], searches["complete"]
    s, t = a.cfg.search, a.cfg.train
    n = len(a.trials)
    arms = ", ".join(f"{k} {v}" for k, v in a.info.get("arms", {}).items())
    stopped = int((a.trials[S.STATUS] == S.STOPPED).sum())
    completed_ref = int((c.trials[S.STATUS] == S.COMPLETED).sum())
    ideal = ideal_share(a.cfg.grace_period, t.epochs, s.reduction_factor, n, len(a.cfg.protected_anchors()))
    marks = rungs(a.cfg.grace_period, t.epochs, s.reduction_factor)
    setup = (f"{n} trials ({arms}), {t.epochs} epoch(s) each, validation every {t.eval_every:g} "
             f"epoch, baseline {a.cfg.baseline_mode}, anchors {'on' if s.anchors else 'off'}, TPE seed "
             f"{s.seed}, {s.max_concurrent} concurrent; ASHA: grace {a.cfg.grace_period:g} epoch(s), "
             f"reduction factor {s.reduction_factor}, rungs {marks}")
    raw = {k: describe(v) for k, v in searches.items()} | {"ideal_share": ideal}
    row_a = at_most(
        "3a", "search compute: run every trial to completion vs ASHA", c.trial_epochs, a.trial_epochs,
        "trial-epochs", 0.4,
        f"{setup}: {stopped} of {n} stopped early (ideal synchronous halving would reach "
        f"{ideal:.2f}); run to completion = the same search with search.grace_period = "
        f"train.epochs ({t.epochs}), so ASHA's only rung is max_t and nothing is stopped "
        f"({completed_ref} of {len(c.trials)} completed); trial-epochs = sum of trials.csv progress; "
        "confirm stage off in both", raw=raw)
    drop = 100 * (c.best_f1 - a.best_f1)
    row_b = Row(
        "3b", "search quality: best val macro-F1, to completion vs ASHA", c.best_f1, a.best_f1,
        "macro-F1", "ASHA >= reference - 0.5 pt", a.best_f1 >= c.best_f1 - 0.005 - 1e-12,
        f"ASHA {-drop:+.2f} points; best trial's best_val_macro_f1 (full validation at epoch "
        "ends); TPE's later suggestions may differ once a stopped trial reports a lower score",
        raw={"drop_points": drop})
    row_c = at_most(
        "3c", "search wall time: to completion vs ASHA", c.search_seconds, a.search_seconds, "s", 0.5,
        f"run_info.json search_seconds (the Tuner stage only); {s.max_concurrent} concurrent trials, "
        f"{s.cpus_per_trial:g} CPU each; whole kdtune.search.main {c.wall_seconds:.0f} s / "
        f"{a.wall_seconds:.0f} s (data, cached teacher, Ray start, results included)",
        raw={k: {"search_seconds": v.search_seconds, "wall_seconds": v.wall_seconds}
             for k, v in searches.items()})
    return [row_a, row_b, row_c]
