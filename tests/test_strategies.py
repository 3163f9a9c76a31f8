"""The search-strategy seam: one registry, each strategy's sampler and scheduler, the grid in the
seed report's order, and the benchmark replaying the same registry."""

from __future__ import annotations

import itertools

import optuna
import pytest

from kdtune.config import load_config
from kdtune.errors import ConfigError
from kdtune.strategies import SEED_GRID, STRATEGIES, strategy
from kdtune.tuning.searchers import build_router

QUICKSTART = "search_spaces/alpha_temp.yaml"


def test_registry_names_the_four_strategies():
    assert list(STRATEGIES) == ["tpe_asha", "random_asha", "tpe", "grid"]
    assert isinstance(strategy("tpe_asha").sampler(0, 10), optuna.samplers.TPESampler)
    assert isinstance(strategy("random_asha").sampler(0, 10), optuna.samplers.RandomSampler)
    assert [STRATEGIES[k].early_stopping for k in STRATEGIES] == [True, True, False, False]
    with pytest.raises(ConfigError, match="search.strategy: must be one of tpe_asha"):
        load_config(QUICKSTART, {"search.strategy": "hyperband"})


@pytest.mark.parametrize("name,fifo", [("tpe_asha", False), ("random_asha", False), ("tpe", True)])
def test_scheduler_follows_the_strategy(name: str, fifo: bool):
    from ray.tune.schedulers import FIFOScheduler

    from kdtune.search.tuning_run import _scheduler
    from kdtune.tuning import RungASHA

    sched = _scheduler(load_config(QUICKSTART, {"search.strategy": name}))
    # (Ray's ASHA is a FIFOScheduler subclass: compare the exact type)
    assert type(sched) is (FIFOScheduler if fifo else RungASHA)


def test_grid_runs_the_seed_reports_grid_in_its_order_on_the_quickstart_space():
    with pytest.raises(ConfigError, match="the grid has 27 kd \\+ 3 ce = 30 points; set num_samples: 30"):
        load_config(QUICKSTART, {"search.strategy": "grid"})
    cfg = load_config(QUICKSTART, {"search.strategy": "grid", "search.num_samples": 30})
    router = build_router(cfg, optuna.storages.InMemoryStorage())
    proposals = [router.suggest(f"t{i}") for i in range(30)]
    assert router.suggest("t30") == "FINISHED"
    kd = [(c["alpha"], c["temperature"], c["learning_rate"]) for c in proposals if c["arm"] == "kd"]
    # alpha, then T, then the learning rate, each ascending: the seed report's grid order
    assert kd == list(itertools.product(SEED_GRID["alpha"], SEED_GRID["temperature"],
                                        SEED_GRID["learning_rate"]))
    ce = [c for c in proposals if c["arm"] == "ce"]
    assert [c["learning_rate"] for c in ce] == list(SEED_GRID["learning_rate"])
    assert all(c["alpha"] == 1.0 and c["beta"] == 0.0 for c in ce)
    from ray.tune.schedulers import FIFOScheduler

    from kdtune.search.tuning_run import _scheduler

    assert type(_scheduler(cfg)) is FIFOScheduler  # every grid point runs to the end


def test_grid_values_from_the_config_and_their_checks():
    cfg = load_config(QUICKSTART, {"search.strategy": "grid", "search.num_samples": 21,
                                   "search.grid": {"alpha": [0.5, "1e-1"]}})
    kd = cfg.arms()[0]
    assert kd.num_samples == 18 and kd.points[0] == {"alpha": 0.1, "temperature": 1.0,
                                                     "learning_rate": 3e-5}
    with pytest.raises(ConfigError, match="search.grid.alpha: 2.0 is outside space.alpha"):
        load_config(QUICKSTART, {"search.strategy": "grid", "search.grid": {"alpha": [2.0]}})
    with pytest.raises(ConfigError, match="search.grid.beta: beta is not searched"):
        load_config(QUICKSTART, {"search.strategy": "grid", "search.grid": {"beta": [0.5]}})


def test_the_benchmark_replays_the_same_registry():
    from benchmarks.search.strategies import LABELS, main_strategies, registry_strategies

    replayed = registry_strategies()
    assert [s.name for s in replayed] == [LABELS.get(k, k) for k in STRATEGIES]
    for s, cls in zip(replayed, STRATEGIES.values(), strict=True):
        assert s.sampler == cls.replay and (s.scheduler == "asha") == cls.early_stopping
    names = [s.name for s in main_strategies()]
    assert names[:len(replayed)] == [s.name for s in replayed]
