"""CLI: ``python -m kdtune.retrain results/<experiment>``: is the distillation gain real?

The search ranks trials by one seed's validation score, so its winner is partly luck. This
package re-trains the chosen configuration (the search's best trial, or ``--trial ID``) with
``--seeds`` seeds, and the CE-only baseline (alpha = 1) with the same seeds, data, epochs and
batch size; evaluates every run on the validation split and on the held-out test split the
search never saw; and compares student and baseline *paired*:

* over seeds, on test macro-F1: paired t-test and Wilcoxon signed-rank test;
* over test examples, on the seeds' majority-vote predictions (and on the best seeds'): a paired
  bootstrap confidence interval of the macro-F1 difference and the exact McNemar test on
  per-example correctness (a binomial test on the discordant pairs).

Every run keeps the weights of its best validation epoch, as the search's own evaluation does;
the test split is never used to choose anything. The first seed of the chosen configuration is
the trial re-run (same seed, epochs, torch threads and device as a search trial), so
``retrain.json`` records how closely it reproduces the trial's validation macro-F1. The best seed's
student (by validation macro-F1) is exported with ``save_pretrained`` and a model card.

Writes ``<exp>/retrain/``: ``retrain.json``, ``per_seed.csv``, ``summary.md`` and ``model/``. No Ray
here: the stages come from :func:`kdtune.pipeline.prepare`, the training from
:mod:`kdtune.trainer`.

Modules: :mod:`~kdtune.retrain.choose` (reading the experiment, picking the configuration),
:mod:`~kdtune.retrain.runs` (training and evaluating one seed, reproduction of the trial),
:mod:`~kdtune.retrain.stats` (paired tests, verdict), :mod:`~kdtune.retrain.card` (export and
model card), :mod:`~kdtune.retrain.summary` (``summary.md``), :mod:`~kdtune.retrain.formatting`
and :mod:`~kdtune.retrain.cli` (``run_retrain``, ``main``).
"""

from kdtune.retrain.card import (
    LATENCY_EXAMPLES,
    LATENCY_WARMUP,
    export_model,
    measure_latency,
    write_model_card,
)
from kdtune.retrain.choose import (
    OK_STATUSES,
    Choice,
    choose_config,
    load_experiment,
    read_trials,
)
from kdtune.retrain.cli import (
    EXIT_BAD_INPUT,
    EXIT_NOT_REPRODUCED,
    PROG,
    main,
    parse_args,
    run_retrain,
)
from kdtune.retrain.runs import (
    REPRODUCTION_TOLERANCE,
    Run,
    metric_columns,
    reproduction,
    train_device,
    train_run,
)
from kdtune.retrain.stats import (
    CONFIDENCE,
    example_level_tests,
    majority_vote,
    mean_std,
    seed_level_tests,
    verdict,
)
from kdtune.retrain.summary import write_summary

__all__ = [
    "CONFIDENCE", "EXIT_BAD_INPUT", "EXIT_NOT_REPRODUCED", "LATENCY_EXAMPLES", "LATENCY_WARMUP",
    "OK_STATUSES", "PROG", "REPRODUCTION_TOLERANCE", "Choice", "Run", "choose_config",
    "example_level_tests", "export_model", "load_experiment", "main", "majority_vote",
    "mean_std", "measure_latency", "metric_columns", "parse_args", "read_trials", "reproduction",
    "run_retrain", "seed_level_tests", "train_device", "train_run", "verdict", "write_model_card",
    "write_summary",
]
