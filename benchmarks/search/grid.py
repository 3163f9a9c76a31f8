"""The benchmark's grid, its data size and the table's columns: one definition for build and replay.

Torch-free: the replay (``--quick``) imports this without loading any model code.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from kdtune.strategies import SEED_GRID

#: The dense grid (3 alpha x 3 T x 3 learning rates), over the quickstart's ranges
#: (alpha [0, 1], T [1, 10], learning_rate [2e-5, 5e-4]). It holds the seed report's default
#: (alpha 0.7, T 3) at the benchmark's train.learning_rate (1e-4): kdtune's first KD trial.
ALPHAS = SEED_GRID["alpha"]  # kdtune's one definition: search.strategy grid runs this grid
TEMPERATURES = SEED_GRID["temperature"]
LEARNING_RATES = SEED_GRID["learning_rate"]
SEEDS = (0, 1)
PARAMS = ("alpha", "temperature", "learning_rate")
SEED_DEFAULT = (0.7, 3.0, 1e-4)

#: Data and training of every table run (and of the live search): the quickstart's space
#: (search_spaces/alpha_temp.yaml) with fewer rows, so the whole grid fits ~40 min on 2 cores.
#: 512 train rows = 16 steps of 32 per epoch: the rungs of eval_every 0.25 / 0.5 / 1 fall on
#: whole steps (4, 8, 12, 16), so one recording serves all three.
BASE_SPACE = "search_spaces/alpha_temp.yaml"
EPOCHS = 3
FINEST_EVAL_EVERY = 0.25
OVERRIDES = {
    "name": "bench_search",
    "data.max_train": 512,
    "data.max_val": 200,
    "data.max_test": 100,
    "train.epochs": EPOCHS,
    "train.eval_every": FINEST_EVAL_EVERY,
    "train.learning_rate": 1e-4,
    "search.grace_period": 0.5,
}
#: eval_every values a replay can emulate: each has its own column of what the search sees.
EVAL_EVERY_CHOICES = (0.25, 0.5, 1.0)

TABLE = Path(__file__).resolve().parents[1] / "results" / "search_table.csv"
COLUMNS = ("alpha", "temperature", "learning_rate", "seed", "progress", "epoch", "full_val",
           "val_macro_f1_full", "val_accuracy_full", "val_loss",
           "val_macro_f1_rung_e4", "val_rows_e4", "val_macro_f1_rung_e2", "val_rows_e2",
           "seconds", "eval_seconds")


def rung_column(eval_every: float) -> str:
    """The column holding what a search with this ``eval_every`` sees at its rungs."""
    return {0.25: "val_macro_f1_rung_e4", 0.5: "val_macro_f1_rung_e2",
            1.0: "val_macro_f1_full"}[eval_every]


def grid_points() -> list[tuple[float, float, float]]:
    """All 27 points in the seed report's order: alpha, then T, then the learning rate."""
    return list(itertools.product(ALPHAS, TEMPERATURES, LEARNING_RATES))


def runs() -> list[tuple[float, float, float, int]]:
    """Every (alpha, T, lr, seed) of the table, seeds innermost."""
    return [(*p, s) for p in grid_points() for s in SEEDS]
