"""``python -m kdtune.retrain results/<experiment>``: the final verdict, over seeds, on test.

The search ranks trials on validation, one seed each (or a few with the confirm stage), so its
answer is provisional. This package re-trains the recommended KD configuration and the tuned
CE-only baseline, *each at its own hyperparameters*, with the same ``--seeds`` seeds, data and
epochs; evaluates every run on the validation split and on the held-out test split the search
never saw; and compares them *paired*:

* over seeds, on test macro-F1: paired t-test (with the CI of the mean difference) and Wilcoxon;
* over test examples, on the seeds' majority-vote predictions (and on the best seeds'): a paired
  bootstrap CI of the macro-F1 difference and the exact McNemar test.

The verdict is one of three statements (:func:`~kdtune.retrain.stats.verdict_statement`): KD
beats tuned CE by X points, no difference detectable at this power (with the minimum
detectable effect at n seeds), or KD is worse. Every run keeps the weights of its best
full-validation evaluation; the test split picks nothing. The first KD seed is the trial re-run,
so ``retrain.json`` records how closely it reproduces the trial. The best KD seed (by
validation) is exported with ``save_pretrained`` and a Hugging Face model card.

Writes ``<exp>/retrain/``: ``retrain.json``, ``per_seed.csv``, ``summary.md`` and ``model/``.
Modules: :mod:`~kdtune.retrain.choose`, :mod:`~kdtune.retrain.runs`,
:mod:`~kdtune.retrain.stats`, :mod:`~kdtune.retrain.card`, :mod:`~kdtune.retrain.summary`,
:mod:`~kdtune.retrain.cli`.
"""


from kdtune.retrain.choose import Choice, Pick, choose
from kdtune.retrain.cli import EXIT_NOT_REPRODUCED, PROG, main, parse_args, run_retrain
from kdtune.retrain.runs import REPRODUCTION_TOLERANCE, Run, metric_columns, reproduction, train_run
from kdtune.retrain.stats import (
    CONFIDENCE,
    example_level_tests,
    majority_vote,
    mean_std,
    minimum_detectable_effect,
    seed_level_tests,
    verdict_statement,
)

__all__ = [
    "CONFIDENCE", "EXIT_NOT_REPRODUCED", "PROG", "REPRODUCTION_TOLERANCE", "Choice", "Pick", "Run",
    "choose", "example_level_tests", "main", "majority_vote", "mean_std", "metric_columns",
    "minimum_detectable_effect", "parse_args", "reproduction", "run_retrain", "seed_level_tests",
    "train_run", "verdict_statement",
]
