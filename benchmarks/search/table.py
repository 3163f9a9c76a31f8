"""The benchmark table in memory: one learning curve per (grid point, seed).

A row of ``search_table.csv`` is one rung of one run: ``progress`` (epochs, every 0.25),
``val_macro_f1_full`` (the whole validation split), ``val_macro_f1_rung_e4`` / ``_e2`` (what a
search with ``train.eval_every`` 0.25 / 0.5 sees there: the trainer's stratified subset between
epoch ends, the whole split at epoch ends; empty where that eval_every has no rung), ``full_val``
and ``val_loss``. Torch-free.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.search import grid

Point = tuple[float, float, float]  # (alpha, temperature, learning_rate)
#: Time unit of the replay: a quarter epoch (the finest recorded rung); integers avoid drift.
UNITS_PER_EPOCH = 4


@dataclass
class Curve:
    """One run's rungs, indexed by quarter epochs 1..epochs*4."""

    quarters: np.ndarray  # int, progress * UNITS_PER_EPOCH
    full: np.ndarray  # F1 on the whole validation split
    full_val: np.ndarray  # bool: an epoch end (the trainer scored the whole split)
    seen: dict[float, np.ndarray]  # eval_every -> what the search sees (nan: no rung there)
    loss: np.ndarray

    def at(self, quarter: int) -> int:
        i = int(np.searchsorted(self.quarters, quarter))
        if i >= len(self.quarters) or self.quarters[i] != quarter:
            raise KeyError(f"no rung at progress {quarter / UNITS_PER_EPOCH}")
        return i


def _f(value: Any) -> float:
    return math.nan if value in (None, "", "nan") else float(value)


class Table:
    """Learning curves of every (grid point, seed) and the facts thresholds are set from."""

    def __init__(self, curves: dict[tuple[Point, int], Curve]):
        if not curves:
            raise ValueError("the table is empty")
        self.curves = curves
        self.points: list[Point] = sorted({p for p, _ in curves})  # alpha, T, lr: the grid order
        self.seeds: list[int] = sorted({s for _, s in curves})
        missing = [(p, s) for p in self.points for s in self.seeds if (p, s) not in curves]
        if missing:
            raise ValueError(f"{len(missing)} (point, seed) runs are missing, e.g. {missing[0]}; "
                             "finish the build (--build resumes it)")
        self.max_quarter = int(max(c.quarters[-1] for c in curves.values()))
        self.epochs = self.max_quarter / UNITS_PER_EPOCH
        finals = np.array([[self.curves[(p, s)].full[-1] for s in self.seeds] for p in self.points])
        self.final_by_seed = finals  # [point, seed]
        self.final_mean = finals.mean(axis=1)
        self.value = dict(zip(self.points, self.final_mean.tolist(), strict=True))
        self.best_index = int(np.argmax(self.final_mean))
        self.best_point = self.points[self.best_index]
        self.best = float(self.final_mean[self.best_index])
        self.seed_sd = finals.std(axis=1, ddof=1) if len(self.seeds) > 1 else np.zeros(len(self.points))

    @property
    def median_seed_sd(self) -> float:
        return float(np.median(self.seed_sd))

    def within(self, threshold: float) -> list[Point]:
        """Grid points whose seed-mean final F1 is within ``threshold`` of the best."""
        return [p for p in self.points if self.value[p] >= self.best - threshold - 1e-12]

    @property
    def grid_compute(self) -> float:
        """Trial-epochs of the full grid (every point once, to the end)."""
        return len(self.points) * self.epochs

    @classmethod
    def from_rows(cls, rows: Iterable[dict[str, Any]]) -> Table:
        runs: dict[tuple[Point, int], list[dict[str, Any]]] = {}
        for r in rows:
            key = ((float(r["alpha"]), float(r["temperature"]), float(r["learning_rate"])),
                   int(r["seed"]))
            runs.setdefault(key, []).append(r)
        curves = {}
        for key, rs in runs.items():
            rs.sort(key=lambda r: float(r["progress"]))
            quarters = np.array([round(float(r["progress"]) * UNITS_PER_EPOCH) for r in rs])
            full = np.array([_f(r["val_macro_f1_full"]) for r in rs])
            full_val = np.array([bool(int(float(r["full_val"]))) for r in rs])
            seen = {e: np.array([_f(r.get(grid.rung_column(e), math.nan)) for r in rs])
                    for e in grid.EVAL_EVERY_CHOICES}
            loss = np.array([_f(r.get("val_loss")) for r in rs])
            curves[key] = Curve(quarters, full, full_val, seen, loss)
        return cls(curves)

    @classmethod
    def load(cls, path: Path = grid.TABLE) -> Table:
        with open(path, newline="") as f:
            return cls.from_rows(list(csv.DictReader(f)))

    def run_seconds(self, path: Path = grid.TABLE) -> dict[str, float]:
        """Training wall time per run (what kdtune with eval_every 0.25 spends), from the CSV."""
        per_run: dict[tuple, float] = {}
        extra: dict[tuple, float] = {}
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                key = (r["alpha"], r["temperature"], r["learning_rate"], r["seed"])
                per_run[key] = per_run.get(key, 0.0) + _f(r["seconds"])
                extra[key] = extra.get(key, 0.0) + _f(r.get("eval_seconds", 0))
        v = np.array(list(per_run.values()))
        both = np.array([per_run[k] + extra[k] for k in per_run])
        return {"runs": len(v), "median_run_s": float(np.median(v)), "sum_run_s": float(v.sum()),
                "sum_extra_eval_s": float(sum(extra.values())), "fastest_run_s": float(both.min())}
