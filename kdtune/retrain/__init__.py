"""``python -m kdtune.retrain results/<experiment>``: the final decision, over fresh seeds, on test.

The search ranks trials on validation, one seed each (or a few with the confirm stage), so its
answer is provisional. This package re-trains the recommended KD configuration and the tuned
CE-only baseline, *each at its own hyperparameters*, on the same *fresh* seeds (never one the
search or its confirm stage ran, :mod:`~kdtune.retrain.seeds`), data and epochs, side by side
as Ray tasks (:mod:`~kdtune.retrain.pool`); evaluates every run on the validation split and on
the held-out test split the search never saw; and compares them *paired*:

* over seeds, on test macro-F1: the paired t-test and two one-sided tests of equivalence within
  a margin (:mod:`~kdtune.retrain.decision`), with group-sequential levels when seeds are added
  in rounds (``--seeds auto``, :mod:`~kdtune.retrain.sequential`, :mod:`~kdtune.retrain.rounds`);
* over test examples, on the seeds' majority-vote predictions (and on the best seeds'): a paired
  bootstrap CI of the macro-F1 difference and the exact McNemar test (:mod:`~kdtune.retrain.stats`).

The decision is one of four: ``kd_better``, ``kd_worse``, ``equivalent`` or ``inconclusive``
(with the number of seeds that would most likely decide). Both models' best validation seeds
are saved; the one to ship (:mod:`~kdtune.retrain.ship`) goes to ``retrain/model/`` with a
Hugging Face model card, the other to ``retrain/alternative/``. Writes ``<exp>/retrain/``:
``retrain.json``, ``per_seed.csv``, ``summary.md``, ``model/`` and ``alternative/``.
"""

from kdtune.retrain.choose import Choice, Pick, choose
from kdtune.retrain.cli import EXIT_NOT_REPRODUCED, PROG, main, parse_args
from kdtune.retrain.decision import KINDS, decide
from kdtune.retrain.retraining import run_retrain
from kdtune.retrain.runs import REPRODUCTION_TOLERANCE, Run, metric_columns, reproduction, train_run
from kdtune.retrain.sequential import Design, schedule
from kdtune.retrain.stats import (
    CONFIDENCE,
    example_level_tests,
    majority_vote,
    mean_std,
    minimum_detectable_effect,
    seed_level_tests,
)

__all__ = [
    "CONFIDENCE", "EXIT_NOT_REPRODUCED", "KINDS", "PROG", "REPRODUCTION_TOLERANCE", "Choice",
    "Design", "Pick", "Run", "choose", "decide", "example_level_tests", "main", "majority_vote",
    "mean_std", "metric_columns", "minimum_detectable_effect", "parse_args", "reproduction",
    "run_retrain", "schedule", "seed_level_tests", "train_run",
]
