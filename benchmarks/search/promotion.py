"""``python -m benchmarks.search.promotion``: kdtune's ASHA promotion rule against Ray's, paired.

Both rules replay the same TPE + ASHA strategy on the committed table with the same replay
seeds (``search.promotion: top_k`` against ``percentile``), so each seed gives one paired
difference. Two shapes, each printed as mean difference and its 95% bootstrap interval:

* anytime: replays run to the grid's compute; the pick's seed-mean F1 once 9, 13.5 and 27
  trial-epochs are spent (what bench_search's main table reads);
* the quickstart's shape: 14 trials run to their end; the share of the trial-epochs of running
  all 14 to the end, and the returned config's seed-mean F1.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from benchmarks.search import strategies as S
from benchmarks.search.evaluate import bootstrap
from benchmarks.search.replay import Strategy, quiet, simulate
from benchmarks.search.table import Table

BUDGETS = (9.0, 13.5, 27.0)
RULES = ("percentile", "top_k")


def _strategy(**kw: Any) -> Strategy:
    return Strategy("TPE + ASHA", "tpe", "asha", startup_from=S.RECOMMENDED["num_samples"],
                    **S.asha_settings(S.RECOMMENDED), **kw)


def replay(table: Table, seeds: int) -> dict[str, dict[str, np.ndarray]]:
    """Per rule: the anytime picks' F1 at each budget, and the 14-trial searches' share and F1."""
    n = S.RECOMMENDED["num_samples"]
    out: dict[str, dict[str, np.ndarray]] = {}
    for rule in RULES:
        anytime = [simulate(table, _strategy(promotion=rule), s, max_compute=table.grid_compute)
                   for s in range(seeds)]
        capped = [simulate(table, _strategy(promotion=rule, num_samples=n), s) for s in range(seeds)]
        out[rule] = {f"f1@{b:g}": np.array([r.score_at(table, b) for r in anytime]) for b in BUDGETS}
        out[rule]["share"] = np.array([r.compute / (n * table.epochs) for r in capped])
        out[rule]["f1"] = np.array([table.value[r.final] for r in capped])
    return out


def lines(result: dict[str, dict[str, np.ndarray]], points: float = 100.0) -> list[str]:
    """One line per quantity: each rule's mean, and top_k minus percentile with its interval."""
    out = []
    for key in result[RULES[0]]:
        scale = 1.0 if key == "share" else points  # F1 differences in points
        a, b = result["top_k"][key], result["percentile"][key]
        lo, hi = bootstrap(list(a - b), np.mean)
        unit = "" if key == "share" else " points"
        out.append(f"{key}: percentile {b.mean():.4f}, top_k {a.mean():.4f}; top_k - percentile "
                   f"{scale * (a - b).mean():+.3f}{unit} (95% CI {scale * lo:+.3f} to "
                   f"{scale * hi:+.3f})")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.search.promotion", description=__doc__)
    p.add_argument("--seeds", type=int, default=200, help="paired replay seeds (0..N-1)")
    args = p.parse_args(argv)
    if args.seeds < 2:
        p.error("--seeds: give at least 2 replay seeds")
    quiet()
    for line in lines(replay(Table.load(), args.seeds)):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
