"""The tabular search benchmark's replay engine, on small synthetic tables of known structure."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.search import grid
from benchmarks.search.evaluate import quantiles
from benchmarks.search.replay import Asha, GridSearch, Strategy, simulate
from benchmarks.search.table import Table

ROOT = Path(__file__).resolve().parents[1]
BEST = (0.9, 9.0, 3e-4)  # the last grid point in the seed report's order


def rows_for(point, seed, values, epochs=3):
    """One run's table rows: ``values(progress) -> (seen, full)`` at every quarter epoch."""
    a, t, lr = point
    out = []
    for k in range(1, epochs * 4 + 1):
        p = k / 4
        seen, full = values(p)
        end = k % 4 == 0
        out.append({"alpha": a, "temperature": t, "learning_rate": lr, "seed": seed, "progress": p,
                    "full_val": int(end), "val_macro_f1_full": full, "val_loss": 1.0,
                    "val_macro_f1_rung_e4": full if end else seen,
                    "val_macro_f1_rung_e2": full if end else (seen if k % 2 == 0 else math.nan)})
    return out


@pytest.fixture(scope="module")
def synthetic() -> Table:
    """The benchmark's 27 grid points x 2 seeds; one clearly best point (0.90), the others
    0.60-0.85 rising along the grid order, small seed noise, curves rising with progress."""
    rng = np.random.default_rng(0)
    rows = []
    for i, point in enumerate(grid.grid_points()):
        level = 0.90 if point == BEST else 0.60 + 0.01 * i
        for seed in (0, 1):
            noise = rng.normal(0, 0.002)

            def values(p, level=level, noise=noise):
                f = level * (1 - math.exp(-1.5 * p)) + noise
                return f + 0.003, f

            rows += rows_for(point, seed, values)
    return Table.from_rows(rows)


def test_table_facts(synthetic):
    assert synthetic.best_point == BEST
    assert synthetic.grid_compute == 81
    assert synthetic.within(0.005) == [BEST]
    assert 0 < synthetic.median_seed_sd < 0.01


def test_grid_finds_the_optimum_at_full_cost(synthetic):
    run = simulate(synthetic, Strategy("grid", "grid", "none", workers=1), seed=0)
    assert [t.point for t in run.trials] == grid.grid_points()
    assert run.final == BEST
    assert run.compute == 81
    # The best point is the grid's last (78 trial-epochs before it); after its 2nd epoch it
    # already leads every other point's final score, so it is the incumbent at 80.
    assert run.compute_to(synthetic, 0.005) == 80
    assert run.score_at(synthetic, 27) < synthetic.best - 0.1  # a third of the grid misses it


@pytest.mark.parametrize("strategy", [
    Strategy("random+asha", "random", "asha", num_samples=30, grace_period=0.5, reduction_factor=2,
             eval_every=0.25),
    Strategy("tpe+asha", "tpe", "asha", num_samples=20, eval_every=0.5),
    Strategy("tpe+sh", "tpe", "optuna_sh", workers=1, num_samples=15, eval_every=0.5),
    Strategy("tpe+dedup", "tpe", "asha", num_samples=40, dedup=True, fixed_seed=0),
])
def test_compute_is_the_sum_of_progress(synthetic, strategy):
    run = simulate(synthetic, strategy, seed=3)
    assert all(t.status in ("completed", "stopped") for t in run.trials)
    assert run.compute == pytest.approx(sum(t.end for t in run.trials) / 4)
    assert len(run.trials) + run.duplicates == strategy.num_samples or len(run.trials) == 27
    if strategy.dedup:
        assert len({t.point for t in run.trials}) == len(run.trials)
    stopped = [t for t in run.trials if t.status == "stopped"]
    assert stopped and all(t.end < 12 for t in stopped)


def test_a_budget_cuts_the_replay(synthetic):
    run = simulate(synthetic, Strategy("r", "random", "none"), seed=1, max_compute=10)
    assert 10 <= run.compute < 10 + 2 * 0.25 * 4  # both slots' next results overshoot a little
    assert run.incumbent_at(10) is not None


class Fixed(GridSearch):
    """The table's points in order, recording what the scheduler let through."""

    def __init__(self, table):
        super().__init__(table, None, 0)
        self.reports, self.told = [], []

    def report(self, handle, step, value):
        self.reports.append((handle, step, value))

    def tell(self, handle, pruned, value):
        self.told.append((pruned, value))


def test_asha_stops_trials_as_the_rule_says():
    """Four sequential trials, grace 0.5, rf 2: rungs at 0.5, 1 and 2 epochs. Under Ray's rule
    (``promotion="percentile"``) at a rung a trial continues iff its value is not below the
    median ((1 - 1/rf) percentile) of the values recorded there before it; its value is then
    recorded. Hand-checked:

    * A (0.5 flat): nothing recorded anywhere -> runs to 3 epochs.
    * B (0.7 flat): 0.7 >= 0.5 at every rung -> 3 epochs.
    * C (0.6 at 0.5, then 0.45): rung 0.5: median(0.5, 0.7) = 0.6, 0.6 is not below -> on;
      rung 1: median(0.5, 0.7) = 0.6 > 0.45 -> stopped at 1 epoch.
    * D (0.4 flat): rung 0.5: median(0.5, 0.7, 0.6) = 0.6 > 0.4 -> stopped at 0.5.
    """
    curves = {(0.1, 1.0, 1e-4): lambda p: 0.5 if p < 3 else 0.55, (0.2, 1.0, 1e-4): lambda p: 0.7,
              (0.3, 1.0, 1e-4): lambda p: 0.6 if p < 1 else 0.45, (0.4, 1.0, 1e-4): lambda p: 0.4}
    rows = []
    for point, f in curves.items():
        rows += rows_for(point, 0, lambda p, f=f: (f(p), f(p)))
    table = Table.from_rows(rows)
    st = Strategy("asha", "grid", "asha", workers=1, grace_period=0.5, reduction_factor=2,
                  eval_every=0.5, promotion="percentile")
    asha = Asha(st, table)
    assert asha.milestones == [0.5, 1.0, 2.0]
    searcher = Fixed(table)
    run = simulate(table, st, seed=0, scheduler=asha, searcher=searcher)
    assert [(t.status, t.end / 4) for t in run.trials] == [
        ("completed", 3.0), ("completed", 3.0), ("stopped", 1.0), ("stopped", 0.5)]
    assert [(tid, p) for tid, p in asha.stops] == [(2, 1.0), (3, 0.5)]
    assert run.compute == 7.5
    # Ray reports no result its scheduler stopped on (ASHA stops at max_t too), but kdtune's
    # ArmSearcher counts the final one in the best it tells: A is told 0.55 (its 3rd epoch);
    # C and D are pruned. A's 3rd result was never reported as an intermediate value.
    assert searcher.told == [(False, 0.55), (False, 0.7), (True, None), (True, None)]
    assert [s for h, s, v in searcher.reports if h is None][:5] == [1, 2, 3, 4, 5]
    assert len(searcher.reports) == 5 + 5 + 1 + 0  # C: its 0.5 result only; D: none
    assert run.final == (0.2, 1.0, 1e-4)
    # Before kdtune commit 90937bb the final epoch was not told: A's best over epochs 1-2.
    old = Fixed(table)
    simulate(table, st.with_(tell_last=False), seed=0, scheduler=Asha(st, table), searcher=old)
    assert old.told[0] == (False, 0.5)
    # kdtune's rule (top_k): C at rung 0.5 is 2nd of 3 and max(1, 3 // 2) = 1 go on -> stopped
    # there; D is 4th of 4 (keep 2) -> stopped. A and B as above: 3 + 3 + 0.5 + 0.5 epochs.
    top = Asha(st.with_(promotion="top_k"), table)
    run = simulate(table, st, seed=0, scheduler=top, searcher=Fixed(table))
    assert [(t.status, t.end / 4) for t in run.trials] == [
        ("completed", 3.0), ("completed", 3.0), ("stopped", 0.5), ("stopped", 0.5)]
    assert run.compute == 7.0


def test_quantiles_with_never():
    assert quantiles([1, 2, 3, 4]) == (1.75, 2.5, 3.25)
    assert quantiles([1, 2, 3, math.inf])[1] == 2.5
    assert quantiles([1, 2, math.inf, math.inf])[1] == math.inf


def test_strategy_refuses_rungs_between_evaluations():
    with pytest.raises(ValueError):
        Strategy("x", grace_period=0.5, eval_every=1.0)


@pytest.mark.skipif(not grid.TABLE.exists(), reason="no committed table")
def test_quick_replays_the_committed_table():
    try:
        Table.load(grid.TABLE)
    except ValueError as exc:  # a build still under way
        pytest.skip(str(exc))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "benchmarks/bench_search.py", "--quick"], cwd=ROOT,
                         capture_output=True, text=True, timeout=180)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr[-2000:]
    verdicts = [line for line in out.stdout.splitlines() if line.startswith(("PASS:", "FAIL:"))]
    assert len(verdicts) == 2
    assert elapsed < 60


def test_promotion_rules_are_compared_paired_with_an_interval(capsys):
    from benchmarks.search import promotion

    # hand-computed: every paired difference is -0.1 of the share and +1 point of F1
    result = {"percentile": {"share": np.array([0.5, 0.6]), "f1": np.array([0.80, 0.81])},
              "top_k": {"share": np.array([0.4, 0.5]), "f1": np.array([0.81, 0.82])}}
    out = promotion.lines(result)
    assert out[0] == ("share: percentile 0.5500, top_k 0.4500; top_k - percentile -0.100 "
                      "(95% CI -0.100 to -0.100)")
    assert out[1].endswith("+1.000 points (95% CI +1.000 to +1.000)")
    if grid.TABLE.exists():
        assert promotion.main(["--seeds", "2"]) == 0
        printed = capsys.readouterr().out.splitlines()
        assert [line.split(":")[0] for line in printed] == ["f1@9", "f1@13.5", "f1@27", "share", "f1"]
