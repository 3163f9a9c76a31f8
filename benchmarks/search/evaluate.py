"""Many replays of each strategy: compute to reach the table's best, best score at a budget.

* **The table's best**: the grid point with the highest seed-mean F1 on the whole validation
  split at the end of training (progress = epochs); its mean over the table's seeds.
* **Compute to target**: trial-epochs until the incumbent (kdtune's pick so far) is a grid point
  whose seed-mean final F1 is within ``threshold`` (0.5 points) of the table's best. A replay
  that never gets there within the cap (the full grid's compute) counts as infinite; the median
  and IQR are taken with those infinities (a median of inf means most replays failed).
* **Score at the budget**: the seed-mean final F1 of the incumbent once ``budget`` trial-epochs
  are spent (1/3 of the grid's compute by default).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.search.replay import Strategy, simulate
from benchmarks.search.table import Table

THRESHOLD = 0.005  # 0.5 points of macro-F1


def quantiles(values: Iterable[float]) -> tuple[float, float, float]:
    """(25th, 50th, 75th) percentiles, linear between order statistics; a percentile that
    falls on or next to an infinity (a replay that never reached the target) is infinite."""
    v = np.sort(np.asarray(list(values), dtype=float))
    if not len(v):
        return (math.nan,) * 3
    out = []
    for p in (0.25, 0.5, 0.75):
        x = p * (len(v) - 1)
        lo, hi = int(math.floor(x)), int(math.ceil(x))
        a, b = float(v[lo]), float(v[hi])
        out.append(a if lo == hi else a + (b - a) * (x - lo) if math.isfinite(b) else math.inf)
    return out[0], out[1], out[2]


def bootstrap(values: list[float], stat, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of ``stat`` over ``values`` (replays resampled)."""
    v = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    stats = np.array([stat(v[rng.integers(len(v), size=len(v))]) for _ in range(n)])
    lo, hi = np.percentile(stats, [2.5, 97.5], method="nearest")
    return float(lo), float(hi)


def diff_interval(a: list[float], b: list[float], n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of mean(a) - mean(b), the replays of each resampled apart."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    d = [np.nanmean(x[rng.integers(len(x), size=len(x))]) - np.nanmean(y[rng.integers(len(y), size=len(y))])
         for _ in range(n)]
    lo, hi = np.percentile(d, [2.5, 97.5])
    return float(lo), float(hi)


def median_of(v: np.ndarray) -> float:
    return quantiles(v)[1]


@dataclass
class Summary:
    strategy: Strategy
    seeds: int
    to_target: list[float]
    score_at_budget: list[float]
    trials_at_cap: list[int]
    stopped_share: float
    curve: dict[float, list[float]] = field(default_factory=dict)  # budget -> scores

    def anytime(self, upto: float) -> list[float]:
        """Per replay: the mean score over the curve's compute levels up to ``upto``."""
        levels = [b for b in self.curve if b <= upto + 1e-9]
        return [float(np.nanmean([self.curve[b][i] for b in levels])) for i in range(self.seeds)]

    @property
    def reached(self) -> float:
        return float(np.mean([math.isfinite(x) for x in self.to_target]))

    def as_dict(self, table: Table) -> dict[str, Any]:
        q1, med, q3 = quantiles(self.to_target)
        s = np.asarray(self.score_at_budget, dtype=float)
        sd = table.median_seed_sd
        ci = bootstrap(self.to_target, median_of)
        return {"strategy": self.strategy.name, "settings": self.strategy.__dict__,
                "to_target_median_ci": ci,
                "replays": self.seeds, "to_target_q1": q1, "to_target_median": med,
                "to_target_q3": q3, "reached_share": self.reached,
                "score_mean": float(np.nanmean(s)), "score_median": float(np.nanmedian(s)),
                "score_q1": float(np.nanpercentile(s, 25)), "score_q3": float(np.nanpercentile(s, 75)),
                "gap_mean_points": float((table.best - np.nanmean(s)) * 100),
                "gap_mean_sd": float((table.best - np.nanmean(s)) / sd) if sd > 0 else math.nan,
                "trials_median": float(np.median(self.trials_at_cap)),
                "stopped_share": self.stopped_share,
                "score_curve": {f"{b:g}": float(np.nanmean(v)) for b, v in self.curve.items()},
                "to_target": self.to_target, "score_at_budget": self.score_at_budget}


def budgets(table: Table) -> list[float]:
    """Compute levels the score curve is read at: 1/9, 1/6, 1/3, 2/3 and all of the grid's."""
    return [table.grid_compute * f for f in (1 / 9, 1 / 6, 1 / 3, 2 / 3, 1.0)]


def evaluate(table: Table, strategy: Strategy, seeds: Iterable[int], budget: float,
             cap: float | None = None, threshold: float = THRESHOLD) -> Summary:
    """Replay ``strategy`` once per seed, each until ``cap`` trial-epochs (default: the grid's)."""
    cap = table.grid_compute if cap is None else cap
    to_target, scores, trials, stopped, n = [], [], [], 0, 0
    curve: dict[float, list[float]] = {b: [] for b in budgets(table)}
    seeds = list(seeds)
    for seed in seeds:
        run = simulate(table, strategy, seed, max_compute=cap)
        to_target.append(run.compute_to(table, threshold))
        scores.append(run.score_at(table, budget))
        for b in curve:
            curve[b].append(run.score_at(table, b))
        trials.append(len(run.trials))
        stopped += sum(t.status == "stopped" for t in run.trials)
        n += sum(t.status != "running" for t in run.trials)
    return Summary(strategy, len(seeds), to_target, scores, trials, stopped / max(n, 1), curve)


def evaluate_trials(table: Table, strategy: Strategy, seeds: Iterable[int],
                    threshold: float = THRESHOLD) -> dict[str, Any]:
    """Replays limited by ``strategy.num_samples`` trials (a kdtune search's budget): the compute
    they spend and the quality of what they return."""
    compute, finals = [], []
    for seed in seeds:
        run = simulate(table, strategy, seed)
        compute.append(run.compute)
        finals.append(math.nan if run.final is None else table.value[run.final])
    f = np.asarray(finals, dtype=float)
    c1, cm, c3 = quantiles(compute)
    return {"num_samples": strategy.num_samples, "compute_q1": c1, "compute_median": cm,
            "compute_q3": c3, "final_mean": float(np.nanmean(f)), "final_median": float(np.nanmedian(f)),
            "final_q1": float(np.nanpercentile(f, 25)), "final_q3": float(np.nanpercentile(f, 75)),
            "within_share": float(np.mean(f >= table.best - threshold - 1e-12)),
            "compute": compute, "finals": finals}
