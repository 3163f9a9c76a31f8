"""Replay search strategies on the table: what each would have found, and at what compute.

A trial is a grid point with a seed drawn uniformly from the table's seeds; its learning curve is
read from the table. Time runs in quarter epochs; trials run on ``workers`` parallel slots (2,
like kdtune's ``search.max_concurrent``), each advancing one epoch of training per epoch of time.
Compute is trial-epochs: the sum over trials of the progress each reached (a stopped trial
counts up to its last rung; when a budget cuts the replay short, running trials count what they
have done).

What a trial reports at a rung is what a search with that ``train.eval_every`` sees: the
stratified subset's F1 between epoch ends, the whole split's at epoch ends. The incumbent (what
the search would return now) is kdtune's pick: the trial with the highest *best full-validation*
F1 so far (epoch ends only; completed or stopped early). Its quality is the table's seed-mean
final F1 of its grid point, so the luck of one seed is not rewarded.

Searchers and schedulers mirror kdtune's wiring (``kdtune.tuning``):

* ASHA is kdtune's bracket (``kdtune.tuning.scheduler``: Ray's ``_Bracket`` with the ASHA
  paper's top-k count, or Ray's own percentile rule with ``promotion="percentile"``) on training
  progress with kdtune's +1e-6, called as Ray's ``AsyncHyperBandScheduler`` calls it: a result
  at ``max_t`` stops the trial, otherwise the bracket decides; at the end the trial's last
  result is passed again (``on_trial_complete``).
* TPE is Optuna's ``TPESampler(seed, n_startup_trials=max(2, min(10, num_samples // 3)))``
  (kdtune's ``startup_trials``), asked with one ``CategoricalDistribution`` over the grid values
  per parameter (i.e. ``suggest_categorical``; univariate TPE as in kdtune), or, with
  ``space="snapped"``, the quickstart's continuous distributions (alpha U[0, 1], T U[1, 10], lr
  logU[2e-5, 5e-4]) with each value snapped to the nearest grid value (lr in log scale).
  As Ray's OptunaSearch does, every result the scheduler lets through is ``trial.report``-ed at
  step = the trial's result count; a stopped trial is told PRUNED; a completed one is told its
  best full-validation F1. Ray passes the result that makes the scheduler say STOP (ASHA says
  it at ``max_t`` too) to the searcher's ``on_trial_result`` never, so that step is not
  ``report``-ed; kdtune's ArmSearcher counts it in the best it tells from ``on_trial_complete``
  (since commit 90937bb; ``tell_last=False`` replays the behaviour before it, when TPE + ASHA
  never learnt a completed trial's last epoch).
* Optuna-native pruning runs sequentially (one worker, Optuna's own ask / report /
  should_prune loop) with ``SuccessiveHalvingPruner`` or ``HyperbandPruner`` at the same rungs.
* kdtune's anchor: every sampled strategy's first trial is the seed default (alpha 0.7, T 3,
  lr 1e-4), as kdtune's KD arm enqueues it (``anchors=False`` to drop it).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import numpy as np

from benchmarks.search import grid
from benchmarks.search.table import UNITS_PER_EPOCH, Point, Table

#: kdtune's RungASHA adds this to progress so that a rung at exactly that point counts as reached.
EPS = 1e-6
#: kdtune.tuning.searchers.MAX_DUPLICATES_IN_A_ROW: then the space counts as exhausted.
MAX_DUPLICATES_IN_A_ROW = 25
SAMPLERS = ("grid", "shuffled_grid", "random", "tpe")
SCHEDULERS = ("none", "asha", "optuna_sh", "optuna_hb")
#: The quickstart's continuous space (search_spaces/alpha_temp.yaml), for space="snapped".
CONTINUOUS = {"alpha": (0.0, 1.0, False), "temperature": (1.0, 10.0, False),
              "learning_rate": (2e-5, 5e-4, True)}


def startup_trials(n: int) -> int:
    """kdtune.tuning.searchers.startup_trials: TPE's random start, a third, between 2 and 10."""
    return max(2, min(10, n // 3))


@dataclass(frozen=True)
class Strategy:
    name: str
    sampler: str = "tpe"  # grid | shuffled_grid | random | tpe
    scheduler: str = "asha"  # none | asha | optuna_sh | optuna_hb
    workers: int = 2
    grace_period: float = 0.5  # epochs
    reduction_factor: int = 3
    promotion: str = "top_k"  # ASHA's rule at a rung: kdtune's search.promotion
    eval_every: float = 0.25
    num_samples: int = 10_000  # trial cap (kdtune's search.num_samples)
    startup_from: int | None = None  # num_samples TPE's n_startup_trials is set from (None: it)
    anchors: bool = True
    space: str = "categorical"  # categorical | snapped
    tell_last: bool = True  # a completed trial's last epoch counts in what TPE is told (above)
    dedup: bool = False  # kdtune's ArmRouter: a point already run is not trained again
    fixed_seed: int | None = None  # every trial trains with this table seed (a live search's)

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS or self.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown sampler/scheduler {self.sampler}/{self.scheduler}")
        steps = self.grace_period / self.eval_every
        if abs(steps - round(steps)) > 1e-9:
            raise ValueError("grace_period must be a multiple of eval_every (kdtune's rule)")

    def with_(self, **kw: Any) -> Strategy:
        return replace(self, **kw)


@dataclass
class Trial:
    id: int
    point: Point
    seed: int
    handle: Any
    start: int  # time (quarters) it started
    times: list[int]  # quarters after start at which it reports
    k: int = 0  # reports done
    best_full: float = -math.inf  # best whole-split F1 seen (epoch ends)
    best_seen: float = -math.inf  # best of every result (what ranks a trial with no epoch end)
    best_told: float = -math.inf  # best whole-split F1 the searcher was shown
    end: int = 0  # quarters of progress when it ended
    last_seen: float = math.nan  # the metric of its last result

    @property
    def score(self) -> float:
        """kdtune's best_val_macro_f1 (record.trials._best): the best whole-split value when
        the trial has one, else its best subset value."""
        return self.best_full if math.isfinite(self.best_full) else self.best_seen
    status: str = "running"  # running | completed | stopped


@dataclass
class Run:
    """One replay: the trials and the trace of (compute in quarters, incumbent point)."""

    trials: list[Trial] = field(default_factory=list)
    trace: list[tuple[int, Point | None]] = field(default_factory=list)
    compute_q: int = 0  # total quarters of training when the replay ended
    duplicates: int = 0  # proposals served from a known result (dedup)

    @property
    def compute(self) -> float:
        return self.compute_q / UNITS_PER_EPOCH

    def compute_to(self, table: Table, threshold: float) -> float:
        """Trial-epochs until the incumbent's seed-mean F1 is within ``threshold`` of the best
        (inf when it never is)."""
        for q, point in self.trace:
            if point is not None and table.value[point] >= table.best - threshold - 1e-12:
                return q / UNITS_PER_EPOCH
        return math.inf

    def incumbent_at(self, budget: float) -> Point | None:
        """The incumbent once ``budget`` trial-epochs are spent (the end when never spent)."""
        out = None
        for q, point in self.trace:
            if q > budget * UNITS_PER_EPOCH + 1e-9:
                break
            out = point
        return out

    def score_at(self, table: Table, budget: float) -> float:
        point = self.incumbent_at(budget)
        return math.nan if point is None else table.value[point]

    @property
    def final(self) -> Point | None:
        return self.trace[-1][1] if self.trace else None


# --- searchers -------------------------------------------------------------------------------


class GridSearch:
    """Every grid point once, in the seed report's order (alpha, then T, then lr)."""

    def __init__(self, table: Table, strategy: Strategy, seed: int):
        self.todo = list(table.points)

    def ask(self) -> tuple[Point | None, Any]:
        return (self.todo.pop(0) if self.todo else None), None

    def report(self, handle: Any, step: int, value: float) -> None:
        pass

    def tell(self, handle: Any, pruned: bool, value: float | None) -> None:
        pass


class ShuffledGrid(GridSearch):
    """Every grid point once, in an order shuffled per replay seed (the grid without the luck
    of its order; random search without replacement)."""

    def __init__(self, table: Table, strategy: Strategy, seed: int):
        rng = np.random.default_rng([seed, 11])
        self.todo = [table.points[i] for i in rng.permutation(len(table.points))]


class RandomSearch(GridSearch):
    """Uniform over grid points, with replacement (the anchor first)."""

    def __init__(self, table: Table, strategy: Strategy, seed: int):
        self.points = table.points
        self.rng = np.random.default_rng([seed, 7])
        self.first = [tuple(grid.SEED_DEFAULT)] if strategy.anchors else []

    def ask(self) -> tuple[Point | None, Any]:
        if self.first:
            return self.first.pop(0), None
        return self.points[int(self.rng.integers(len(self.points)))], None


def _values(table: Table) -> dict[str, list[float]]:
    return {name: sorted({p[i] for p in table.points}) for i, name in enumerate(grid.PARAMS)}


def snap(name: str, x: float, values: list[float]) -> float:
    log = CONTINUOUS[name][2]
    key = (lambda v: abs(math.log(v) - math.log(x))) if log else (lambda v: abs(v - x))
    return min(values, key=key)


class TPESearch:
    """Optuna TPE (kdtune's sampler settings), optionally with an Optuna pruner."""

    def __init__(self, table: Table, strategy: Strategy, seed: int):
        import optuna
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        self.optuna = optuna
        n = strategy.startup_from if strategy.startup_from is not None else strategy.num_samples
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(n))
        e = strategy.eval_every
        min_r, max_r = round(strategy.grace_period / e), round(table.epochs / e)
        pruner: Any = optuna.pruners.NopPruner()
        if strategy.scheduler == "optuna_sh":
            pruner = optuna.pruners.SuccessiveHalvingPruner(
                min_resource=min_r, reduction_factor=strategy.reduction_factor)
        elif strategy.scheduler == "optuna_hb":
            pruner = optuna.pruners.HyperbandPruner(
                min_resource=min_r, max_resource=max_r, reduction_factor=strategy.reduction_factor)
        # A fixed name: HyperbandPruner assigns brackets by hashing the study's name (a random one
        # by default), and every replay must be reproducible.
        self.study = optuna.create_study(study_name="bench_search", direction="maximize",
                                         sampler=sampler, pruner=pruner)
        self.values = _values(table)
        self.snapped = strategy.space == "snapped"
        if self.snapped:
            self.dists = {k: FloatDistribution(lo, hi, log=lg) for k, (lo, hi, lg) in CONTINUOUS.items()}
        else:
            self.dists = {k: CategoricalDistribution(v) for k, v in self.values.items()}
        if strategy.anchors:
            self.study.enqueue_trial(dict(zip(grid.PARAMS, grid.SEED_DEFAULT, strict=True)))

    def ask(self) -> tuple[Point | None, Any]:
        trial = self.study.ask(self.dists)
        if self.snapped:
            point = tuple(snap(k, float(trial.params[k]), self.values[k]) for k in grid.PARAMS)
        else:
            point = tuple(float(trial.params[k]) for k in grid.PARAMS)
        return point, trial

    def report(self, handle: Any, step: int, value: float) -> None:
        handle.report(value, step)

    def should_prune(self, handle: Any) -> bool:
        return handle.should_prune()

    def tell(self, handle: Any, pruned: bool, value: float | None) -> None:
        if pruned or value is None or not math.isfinite(value):
            self.study.tell(handle, state=self.optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(handle, value)


SEARCHERS = {"grid": GridSearch, "shuffled_grid": ShuffledGrid, "random": RandomSearch, "tpe": TPESearch}


# --- schedulers ------------------------------------------------------------------------------


class Fifo:
    """No early stopping: a trial ends at max_t."""

    stops_at_max_t = False  # Ray's FIFOScheduler says CONTINUE; the trial ends by itself

    def __init__(self, strategy: Strategy, table: Table):
        self.max_t = table.epochs

    def on_result(self, trial: Trial, progress: float, value: float) -> bool:
        return progress + EPS >= self.max_t

    def on_complete(self, trial: Trial, progress: float, value: float) -> None:
        pass


class Asha(Fifo):
    """kdtune's RungASHA: Ray's AsyncHyperBandScheduler (one bracket) on progress + 1e-6."""

    stops_at_max_t = True  # AsyncHyperBandScheduler says STOP at max_t

    def __init__(self, strategy: Strategy, table: Table):
        from kdtune.tuning.scheduler import RungASHA

        self.max_t = table.epochs
        asha = RungASHA([], metric="f1", mode="max", max_t=table.epochs,
                        grace_period=strategy.grace_period,
                        reduction_factor=strategy.reduction_factor, promotion=strategy.promotion)
        self.bracket = asha._brackets[0]
        self.stops: list[tuple[int, float]] = []  # (trial id, progress) of every STOP before max_t

    @property
    def milestones(self) -> list[float]:
        return sorted(m for m, _ in self.bracket._rungs)

    def on_result(self, trial: Trial, progress: float, value: float) -> bool:
        t = progress + EPS
        if t >= self.max_t:
            return True
        stop = self.bracket.on_result(SimpleNamespace(trial_id=str(trial.id)), t, value) == "STOP"
        if stop:
            self.stops.append((trial.id, progress))
        return stop

    def on_complete(self, trial: Trial, progress: float, value: float) -> None:
        self.bracket.on_result(SimpleNamespace(trial_id=str(trial.id)), progress + EPS, value)


class OptunaPruning(Fifo):
    """Optuna's pruner (inside the study) decides after each report."""

    def __init__(self, strategy: Strategy, table: Table, searcher: TPESearch):
        super().__init__(strategy, table)
        self.searcher = searcher

    def on_result(self, trial: Trial, progress: float, value: float) -> bool:
        if progress + EPS >= self.max_t:
            return True
        return self.searcher.should_prune(trial.handle)


# --- the event loop --------------------------------------------------------------------------


def simulate(table: Table, strategy: Strategy, seed: int, max_compute: float | None = None,
             scheduler: Any = None, searcher: Any = None) -> Run:
    """Replay ``strategy`` with replay seed ``seed`` until its trials are spent (num_samples,
    or the grid's points) or ``max_compute`` trial-epochs are. ``scheduler`` / ``searcher``
    replace the strategy's own (tests)."""
    rng = np.random.default_rng([seed, 1])  # which table seed each trial gets
    if searcher is None:
        searcher = SEARCHERS[strategy.sampler](table, strategy, seed)
    if scheduler is None:
        if strategy.scheduler == "asha":
            scheduler = Asha(strategy, table)
        elif strategy.scheduler.startswith("optuna"):
            scheduler = OptunaPruning(strategy, table, searcher)
        else:
            scheduler = Fifo(strategy, table)
    step_q = round(strategy.eval_every * UNITS_PER_EPOCH)
    times = list(range(step_q, table.max_quarter + 1, step_q))
    cap = math.inf if max_compute is None else max_compute * UNITS_PER_EPOCH
    tell_last = strategy.tell_last
    slots: list[Trial | None] = [None] * strategy.workers
    run, now, done_q, exhausted = Run(), 0, 0, False
    incumbent: tuple[float, Point | None] = (-math.inf, None)  # (score, point) of kdtune's pick

    def compute_now() -> int:
        return done_q + sum(now - t.start for t in slots if t is not None)

    known: dict[Point, Trial] = {}  # dedup: the first trial of each point
    pending: dict[int, list[Any]] = {}  # dedup: running trial id -> duplicates' handles
    issued = 0  # trials and served duplicates (what num_samples counts)

    def next_trial() -> Trial | None:
        nonlocal issued, exhausted
        for _ in range(MAX_DUPLICATES_IN_A_ROW):
            if exhausted or issued >= strategy.num_samples:
                return None
            point, handle = searcher.ask()
            if point is None:
                exhausted = True
                return None
            issued += 1
            original = known.get(point) if strategy.dedup else None
            if original is None:
                s = strategy.fixed_seed if strategy.fixed_seed is not None \
                    else table.seeds[int(rng.integers(len(table.seeds)))]
                trial = Trial(len(run.trials), point, s, handle, now, times)
                run.trials.append(trial)
                known[point] = trial
                return trial
            run.duplicates += 1
            if original.status == "running":
                pending.setdefault(original.id, []).append(handle)
            else:
                searcher.tell(handle, *outcome(original))
        exhausted = True  # kdtune: that many duplicates in a row means the space is exhausted
        return None

    while True:
        for w in range(len(slots)):
            if slots[w] is None and compute_now() < cap:
                slots[w] = next_trial()
        live = [(t.start + t.times[t.k], w) for w, t in enumerate(slots) if t is not None]
        if not live:
            break
        now, w = min(live)
        trial = slots[w]
        assert trial is not None
        q = trial.times[trial.k]
        trial.k += 1
        curve = table.curves[(trial.point, trial.seed)]
        i = curve.at(q)
        seen, progress = float(curve.seen[strategy.eval_every][i]), q / UNITS_PER_EPOCH
        trial.last_seen = seen
        trial.best_seen = max(trial.best_seen, seen)
        if curve.full_val[i]:
            trial.best_full = max(trial.best_full, float(curve.full[i]))
        # kdtune's pick: the trial with the best score so far (the first of equals)
        leader = max(run.trials, key=lambda t: t.score)
        incumbent = (leader.score, leader.point)
        if isinstance(scheduler, OptunaPruning):  # Optuna's loop: report, then should_prune
            shown = True
            searcher.report(trial.handle, trial.k, seen)
            stop = scheduler.on_result(trial, progress, seen)
        else:  # Ray shows the searcher's on_trial_result only the results its scheduler let
            # through (FIFO lets the last one through too: the trial then ends by itself); the
            # result a trial ends on reaches ArmSearcher through on_trial_complete (tell_last)
            stop = scheduler.on_result(trial, progress, seen)
            reported = not stop or not scheduler.stops_at_max_t
            if reported:
                searcher.report(trial.handle, trial.k, seen)
            shown = reported or (tell_last and progress + EPS >= table.epochs)
        if shown and curve.full_val[i]:
            trial.best_told = max(trial.best_told, float(curve.full[i]))
        run.trace.append((compute_now(), incumbent[1]))
        if stop:
            completed = progress + EPS >= table.epochs
            trial.status, trial.end = ("completed" if completed else "stopped"), q
            done_q += q
            slots[w] = None
            scheduler.on_complete(trial, progress, seen)
            searcher.tell(trial.handle, *outcome(trial))
            for handle in pending.pop(trial.id, []):
                searcher.tell(handle, *outcome(trial))
        if compute_now() >= cap:
            break
    run.compute_q = compute_now()
    if run.trace and run.trace[-1][0] != run.compute_q:
        run.trace.append((run.compute_q, incumbent[1]))
    return run


def outcome(trial: Trial) -> tuple[bool, float | None]:
    """(pruned, value) the searcher is told: kdtune's ArmSearcher.outcome."""
    if trial.status != "completed":
        return True, None
    # ArmSearcher tells the best full-validation value it was shown, else the last result's.
    return False, trial.best_told if math.isfinite(trial.best_told) else trial.last_seen


def quiet() -> None:
    logging.getLogger("optuna").setLevel(logging.ERROR)
