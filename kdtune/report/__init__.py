"""CLI: ``python -m kdtune.report results/<experiment>``: the report a practitioner reads.

Writes ``report.md`` and a self-contained ``report.html`` (images embedded as data URIs, no
network) into the experiment folder, and the PNGs and CSVs they show into ``report/``:

* a leaderboard of the top trials, ranked by each trial's best epoch, with every searched
  parameter (and the latency / size of each student in a multi-objective search);
* for a multi-objective search (``pareto.csv``), the Pareto front: a scatter of every trial's
  quality over its cost with the front and the chosen point, and a table of the front;
* the seed's per-class precision / recall / F1 tables on the held-out test split (baseline,
  teacher, best distilled student, with deltas), F1 across all models and the student's
  confusion matrix;
* an efficiency table measured on this machine's CPU from the saved models (cached in
  ``report/efficiency.csv``);
* plots: val macro-F1 over alpha x temperature, learning curves, KD / CE (and feature) losses of
  the best trial, Optuna's optimisation history and parameter importances, epochs granted by ASHA;
* a verdict written from the numbers, and any multi-seed re-training results.

It works on a finished search, on an interrupted one (no ``trials.csv``: trials are rebuilt from
Ray's ``tune/*/result.json``) and on one still running.

Modules: :mod:`~kdtune.report.experiment` (loading, state), :mod:`~kdtune.report.tables`,
:mod:`~kdtune.report.efficiency`, :mod:`~kdtune.report.plots`, :mod:`~kdtune.report.optuna_plots`,
:mod:`~kdtune.report.pareto_front`, :mod:`~kdtune.report.verdict`, :mod:`~kdtune.report.document`
(markdown + HTML), :mod:`~kdtune.report.sections` and :mod:`~kdtune.report.cli` (``render``,
``main``).
"""

from kdtune.cli import EXIT_BAD_INPUT
from kdtune.report.cli import main, render
from kdtune.report.document import Doc, markdown_to_html
from kdtune.report.efficiency import efficiency_table, measure_model, model_dirs
from kdtune.report.experiment import (
    RUNNING_WINDOW_S,
    STATE_FINISHED,
    STATE_INTERRUPTED,
    STATE_RUNNING,
    Experiment,
    ReportError,
    experiment_state,
    load_experiment,
    trials_from_tune,
)
from kdtune.report.optuna_plots import plot_optuna
from kdtune.report.pareto_front import front_table, plot_pareto
from kdtune.report.plots import (
    plot_alpha_temperature,
    plot_confusion,
    plot_epochs_granted,
    plot_learning_curves,
    plot_losses,
)
from kdtune.report.tables import (
    MODEL_ORDER,
    PARAM_LABELS,
    confusion_table,
    f1_all_models_table,
    leaderboard,
    per_class_test_table,
)
from kdtune.report.verdict import verdict

__all__ = [
    "EXIT_BAD_INPUT", "MODEL_ORDER", "PARAM_LABELS", "RUNNING_WINDOW_S", "STATE_FINISHED",
    "STATE_INTERRUPTED", "STATE_RUNNING", "Doc", "Experiment", "ReportError", "confusion_table",
    "efficiency_table", "experiment_state", "f1_all_models_table", "front_table", "leaderboard",
    "load_experiment", "main", "markdown_to_html", "measure_model", "model_dirs",
    "per_class_test_table", "plot_alpha_temperature", "plot_confusion", "plot_epochs_granted",
    "plot_learning_curves", "plot_losses", "plot_optuna", "plot_pareto", "render",
    "trials_from_tune", "verdict",
]
