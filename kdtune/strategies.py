"""Search strategies: which sampler proposes a search's trials and whether ASHA stops them.

``search.strategy`` names one entry of :data:`STRATEGIES` (as transformers'
``ALL_HYPERPARAMETER_SEARCH_BACKENDS``): a small class with

* ``sampler(seed, n)``: the Optuna sampler of one arm's study (``n`` trials in that arm);
* ``early_stopping``: ASHA on training progress (kdtune's ``RungASHA``), or every trial to the end;
* ``plan(cfg, arms)``: the arms' first points and quotas (default: the anchors, then the sampler);
* ``replay``: how ``benchmarks/search`` replays it on the tabular benchmark (``tpe``, ``random``
  or ``grid``), so a strategy registered here is both runnable and benchmarked.

Adding a strategy is one class, one :data:`STRATEGIES` line and its test. Optuna and Ray are
imported only inside the methods: config validation reads the names without loading them.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any, ClassVar

# ``cfg`` below is a kdtune.config.ExperimentConfig and ``arm`` a kdtune.config.Arm; the config
# imports this module (to validate search.strategy), so this one names them without importing.
ExperimentConfig = Arm = Any

#: The seed report's grid (alpha, then T, then the learning rate), the ``grid`` strategy's
#: values for these parameters unless ``search.grid`` gives others; the tabular benchmark
#: (``benchmarks/search/grid.py``) measures exactly this grid.
SEED_GRID: dict[str, tuple[float, ...]] = {
    "alpha": (0.3, 0.7, 0.9),
    "temperature": (1.0, 3.0, 9.0),
    "learning_rate": (3e-5, 1e-4, 3e-4),
}


def startup_trials(n: int) -> int:
    """TPE's random start: a third of the arm's trials, between 2 and 10."""
    return max(2, min(10, n // 3))


class Strategy:
    """TPE proposals, ASHA stopping (the default); subclasses change one thing each."""

    name: ClassVar[str] = "tpe_asha"
    replay: ClassVar[str] = "tpe"
    early_stopping: ClassVar[bool] = True

    def sampler(self, seed: int, n: int) -> Any:
        from optuna.samplers import TPESampler

        return TPESampler(seed=seed, n_startup_trials=startup_trials(n))

    def plan(self, cfg: ExperimentConfig, arms: list[Arm]) -> list[Arm]:
        return arms

    def check(self, cfg: ExperimentConfig) -> None:
        """Raise :class:`~kdtune.errors.ConfigError` when ``cfg`` cannot run this strategy."""


class RandomAsha(Strategy):
    """Uniform random proposals (seeded), ASHA stopping."""

    name, replay = "random_asha", "random"

    def sampler(self, seed: int, n: int) -> Any:
        from optuna.samplers import RandomSampler

        return RandomSampler(seed=seed)


class Tpe(Strategy):
    """TPE proposals, every trial to the end (no early stopping)."""

    name, early_stopping = "tpe", False


class Grid(Strategy):
    """The seed report's grid: every point once, in its order (alpha, then T, then the learning
    rate, each ascending), every trial to the end. Each arm runs the grid over its own space
    (the CE-only arm: the learning rates), so ``search.num_samples`` must be the grid's size."""

    name, replay, early_stopping = "grid", "grid", False

    def sampler(self, seed: int, n: int) -> Any:
        from optuna.samplers import RandomSampler

        return RandomSampler(seed=seed)  # never asked: every trial is a grid point

    @staticmethod
    def values(cfg: ExperimentConfig, name: str) -> list[Any]:
        from kdtune.errors import ConfigError

        if cfg.search.grid and name in cfg.search.grid:
            return list(cfg.search.grid[name])
        p = next(p for p in cfg.space if p.name == name)
        if p.type == "choice":
            return list(p.values)
        if name in SEED_GRID:
            return list(SEED_GRID[name])
        raise ConfigError(f"search.grid.{name}", f"the grid strategy needs values for {name} "
                          f"(a list under search.grid, or space.{name} as a choice)")

    def points(self, cfg: ExperimentConfig, arm: Arm) -> tuple[dict[str, Any], ...]:
        names = [p.name for p in arm.space]
        axes = [sorted(self.values(cfg, n), key=_order) for n in names]
        return tuple(dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes))

    def plan(self, cfg: ExperimentConfig, arms: list[Arm]) -> list[Arm]:
        planned = [(a, self.points(cfg, a)) for a in arms]
        return [replace(a, points=points, num_samples=len(points)) for a, points in planned]

    def check(self, cfg: ExperimentConfig) -> None:
        from kdtune.errors import ConfigError

        for name, values in (cfg.search.grid or {}).items():
            p = next((p for p in cfg.space if p.name == name), None)
            if p is None:
                raise ConfigError(f"search.grid.{name}", f"{name} is not searched (not in space)")
            outside = [v for v in values if not p.contains(v)]
            if outside:
                raise ConfigError(f"search.grid.{name}", f"{outside[0]!r} is outside space.{name}")
        total = sum(a.num_samples for a in cfg.arms())
        if cfg.search.num_samples != total:
            sizes = " + ".join(f"{a.num_samples} {a.name}" for a in cfg.arms())
            raise ConfigError("search.num_samples", f"the grid has {sizes} = {total} points; set "
                              f"num_samples: {total}")


def _order(v: Any) -> Any:
    return (0, v) if isinstance(v, (int, float)) else (1, str(v))


STRATEGIES: dict[str, type[Strategy]] = {
    "tpe_asha": Strategy,
    "random_asha": RandomAsha,
    "tpe": Tpe,
    "grid": Grid,
}


def strategy(name: str) -> Strategy:
    """The registered strategy ``name``."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown search strategy {name!r}; one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]()
