"""The strategies the benchmark compares, and kdtune's settings it recommends.

``RECOMMENDED`` is what the sweep (``python -m benchmarks.bench_search``, section "ASHA
settings") picked on its own replay seeds (1000+), separate from the seeds the main table and the
targets use (0+), so the targets are not scored on the seeds that chose the settings. The full
run says whether the sweep still agrees with it. Evidence (bench_search.md): grace 0.5 with rf 3
or 4 is the best group on anytime F1 up to 1/3 of the grid's compute; kdtune's settings before
(grace 1, rf 3, eval_every 1) are 0.35 points below it under kdtune's promotion rule (0.19 under
Ray's), outside the bootstrap interval. grace 0.5
needs validation at half epochs: eval_every 0.5 is the coarsest that allows it (and its subset
is three times eval_every 0.25's). num_samples stays 14: the returned config's quality is flat
from 9 to 30 trials (all within noise), and 14 trials spend a median 23 trial-epochs, under a
third of the 27-point grid's 81.
"""

from __future__ import annotations

from benchmarks.search.replay import Strategy

#: kdtune's settings before this benchmark: ASHA's first rung after 1 epoch, rf 3, validation at
#: epoch ends only, 14 trials in the quickstart.
KDTUNE_BEFORE = {"grace_period": 1.0, "reduction_factor": 3, "eval_every": 1.0, "num_samples": 14}
#: What this benchmark recommends (see the sweep in bench_search.md).
RECOMMENDED = {"grace_period": 0.5, "reduction_factor": 3, "eval_every": 0.5, "num_samples": 14}

TPE_ASHA = "TPE + ASHA (kdtune)"
RANDOM_ASHA = "random + ASHA"
GRID = "grid (seed report's order)"


def asha_settings(settings: dict) -> dict:
    return {k: settings[k] for k in ("grace_period", "reduction_factor", "eval_every")}


#: The labels the benchmark's tables use for kdtune's registered strategies.
LABELS = {"tpe_asha": TPE_ASHA, "random_asha": RANDOM_ASHA, "tpe": "TPE", "grid": GRID}


def registry_strategies(settings: dict | None = None) -> list[Strategy]:
    """Every strategy of ``kdtune.strategies.STRATEGIES`` as the replay runs it: a strategy
    registered there is benchmarked here with no other change (its ``replay`` sampler, ASHA when
    it stops early, else every trial to the end)."""
    from kdtune.strategies import STRATEGIES

    s = dict(RECOMMENDED if settings is None else settings)
    a, n = asha_settings(s), s["num_samples"]
    e = {"eval_every": s["eval_every"], "grace_period": s["grace_period"]}  # same rungs seen by all
    out = []
    for key, cls in STRATEGIES.items():
        extra = {"startup_from": n} if cls.replay == "tpe" else {}
        if cls.replay == "grid":
            extra["workers"] = 1  # in order, one after another, as the seed report ran it
        out.append(Strategy(LABELS.get(key, key), cls.replay, "asha" if cls.early_stopping else "none",
                            **extra, **(a if cls.early_stopping else e)))
    return out


def main_strategies(settings: dict | None = None) -> list[Strategy]:
    """kdtune's registered strategies, random search without early stopping, and Optuna-native
    pruning in its two forms; ASHA-like ones at ``settings``; TPE's random start is set from
    ``settings['num_samples']`` as in kdtune."""
    s = dict(RECOMMENDED if settings is None else settings)
    a, n = asha_settings(s), s["num_samples"]
    e = {"eval_every": s["eval_every"], "grace_period": s["grace_period"]}
    return [
        *registry_strategies(settings),
        Strategy("random", "random", "none", **e),
        Strategy("TPE + Optuna SuccessiveHalvingPruner", "tpe", "optuna_sh", workers=1,
                 startup_from=n, **a),
        Strategy("TPE + Optuna HyperbandPruner", "tpe", "optuna_hb", workers=1, startup_from=n, **a),
    ]


def extra_strategies(settings: dict | None = None) -> list[Strategy]:
    """Variants that explain the main rows."""
    s = dict(RECOMMENDED if settings is None else settings)
    a, n = asha_settings(s), s["num_samples"]
    b = KDTUNE_BEFORE
    return [
        Strategy("grid, order shuffled per replay", "shuffled_grid", "none", workers=1,
                 eval_every=s["eval_every"], grace_period=s["grace_period"]),
        Strategy("TPE + ASHA, kdtune's settings before (grace 1, rf 3, eval_every 1)", "tpe", "asha",
                 startup_from=b["num_samples"], **asha_settings(b)),
        Strategy("TPE + ASHA, Ray's percentile promotion (kdtune before search.promotion)", "tpe",
                 "asha", startup_from=n, promotion="percentile", **a),
        Strategy("TPE + ASHA, TPE not told the last epoch (kdtune before commit 90937bb)", "tpe", "asha",
                 startup_from=n, tell_last=False, **a),
        Strategy("TPE + ASHA, continuous space snapped to the grid", "tpe", "asha", startup_from=n,
                 space="snapped", **a),
        Strategy("TPE + ASHA, no anchor", "tpe", "asha", startup_from=n, anchors=False, **a),
    ]
