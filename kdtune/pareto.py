"""Pareto fronts for multi-objective searches (quality vs latency or size)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def pareto_mask(frame: pd.DataFrame, objectives: list[str], modes: list[str]) -> np.ndarray:
    """True for rows no other row dominates (at least as good on all, better on one)."""
    signs = np.array([1.0 if m == "max" else -1.0 for m in modes])
    values = frame[objectives].to_numpy(dtype=float) * signs  # larger is better everywhere
    keep = np.ones(len(values), dtype=bool)
    for i, v in enumerate(values):
        dominated = np.all(values >= v, axis=1) & np.any(values > v, axis=1)
        keep[i] = not dominated.any()
    return keep


def choose(front: pd.DataFrame, metric: str, mode: str, cost: str, tolerance: float) -> int:
    """Index of the cheapest front point whose ``metric`` is within ``tolerance`` of the best.

    The knee a practitioner usually wants: nearly the best quality for the least latency/size.
    """
    best = front[metric].max() if mode == "max" else front[metric].min()
    close = front[(front[metric] - best).abs() <= tolerance]
    return int(close[cost].idxmin())
